"""dataset/csv and dataset/generic: typed Parquet from real files, sources and their policies."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Collection
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from automl_orchestra.contracts import source_policy
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.jobs import WorkerPolicy
from automl_orchestra.engines.builtin import csvfile
from automl_orchestra.engines.builtin.csvfile import CsvOptions, csv_to_parquet
from automl_orchestra.engines.core import downloads
from automl_orchestra.engines.core.downloads import download_to_file, safe_filename
from tests.data import titanic_like
from tests.engines.conftest import Harness, WebServer


def ingest(harness: Harness, path: Path, name: str = "data", **params: object) -> dict:
    harness.policy = WorkerPolicy(import_dirs=[str(path.parent)])
    ran = harness.run("dataset", "csv", {"source": {"kind": "path", "path": str(path)}, **params}, name=name)
    return ran.metadata


def test_csv_types_are_inferred(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text("id,price,name,ok,when\n1,2.5,a,true,2024-01-02\n2,,b,false,2024-01-03\n3,4,NA,,\n")
    meta = ingest(harness, path)
    assert meta["types"] == {"id": "integer", "price": "number", "name": "string", "ok": "boolean", "when": "date"}
    assert meta["rowCount"] == 3 and meta["columnCount"] == 5
    assert meta["source"] == {"kind": "path", "path": str(path)}
    frame = harness.output("data")
    assert frame["price"].isna().tolist() == [False, True, False]
    assert frame["name"].tolist() == ["a", "b", None]


def test_titanic_ingest(harness: Harness, tmp_path: Path) -> None:
    meta = ingest(harness, titanic_like(tmp_path / "titanic.csv", rows=200))
    assert meta["rowCount"] == 200
    assert meta["types"]["Age"] == "number" and meta["types"]["Survived"] == "integer"
    assert meta["types"]["Cabin"] == "string" and meta["sizeBytes"] > 0


def test_late_values_widen_the_inferred_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Inference sees only the first 64 KiB; blocks are 32 KiB; the surprises come ~1 MB into the file.
    monkeypatch.setattr(csvfile, "INFERENCE_BYTES", 64 * 1024)
    rows = ["n,flag,sparse,text"]
    rows += [f"{i},true,,t{i}" for i in range(60_000)]
    rows += ["2.5,maybe,7,x", "3,false,,y", "4,true,word,z"]
    source = tmp_path / "late.csv"
    source.write_text("\n".join(rows) + "\n")
    assert source.stat().st_size > 16 * 32 * 1024
    info = csv_to_parquet(source, tmp_path / "out.parquet", CsvOptions(block_size=32 * 1024))
    types = {field.name: str(field.type) for field in info.schema}
    assert types == {"n": "double", "flag": "string", "sparse": "string", "text": "string"}
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 60_003
    assert table.column("sparse").to_pylist()[-3:] == ["7", None, "word"]
    assert table.column("n").to_pylist()[-3:] == [2.5, 3.0, 4.0]


def test_malformed_csv_names_the_line(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    with pytest.raises(StepError, match=r"malformed CSV at line 4: Expected 2 columns, got 3: 5,6,7"):
        ingest(harness, path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_csv(harness: Harness, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(StepError, match="the file is empty"):
        ingest(harness, path)


def test_header_only_blank_and_repeated_names(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",a,a\n")
    meta = ingest(harness, path)
    assert meta["fields"] == ["Unnamed: 0", "a", "a.1"] and meta["rowCount"] == 0


def test_requested_types_columns_and_separator(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b;c\n1;yes;x\n2;no;y\n")
    meta = ingest(harness, path, separator=";", columns=["c", "b"], types={"b": "boolean"})
    assert meta["fields"] == ["c", "b"] and meta["types"]["b"] == "boolean"
    assert harness.output("data")["b"].tolist() == [True, False]


def test_requested_type_failure_names_column_row_and_line(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "ages.csv"
    path.write_text("Name,Age\na,1\nb,2\nc,abc\n")
    with pytest.raises(StepError, match=r"cannot cast column 'Age' to number: row 2 has value 'abc' \(line 4"):
        ingest(harness, path, types={"Age": "number"})


def test_gzip_and_headerless(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(b"1,x\n2,y\n"))
    meta = ingest(harness, path, header=False, columns=["n", "s"])
    assert meta["fields"] == ["n", "s"] and meta["rowCount"] == 2


def test_latin1_needs_the_encoding(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("city\nMünchen\n".encode("latin-1"))
    with pytest.raises(StepError, match="encoding"):
        ingest(harness, path)
    ingest(harness, path, name="latin", encoding="latin-1")
    assert harness.output("latin")["city"].tolist() == ["München"]


def test_path_outside_import_dirs_is_refused(harness: Harness, tmp_path: Path) -> None:
    allowed = tmp_path / "imports"
    allowed.mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    (allowed / "link.csv").symlink_to(secret)
    harness.policy = WorkerPolicy(import_dirs=[str(allowed)])
    for path in (secret, allowed / "link.csv", allowed / ".." / "secret.csv"):
        with pytest.raises(StepError, match="outside the import directories"):
            harness.run("dataset", "csv", {"source": {"kind": "path", "path": str(path)}})
    # the API's rules, applied again in the worker: absolute paths to regular files only
    (allowed / "data.csv").write_text("a\n1\n")
    refused = {"imports/data.csv": "must be absolute", str(allowed): "not a regular file"}
    for path_text, message in refused.items():
        with pytest.raises(StepError, match=message):
            harness.run("dataset", "csv", {"source": {"kind": "path", "path": path_text}})


def test_upload_source_and_generic_dataset(harness: Harness) -> None:
    harness.store.write_bytes("uploads/u1/blob", b"a,b\n1,2\n")
    source = {"kind": "upload", "key": "uploads/u1/blob", "filename": "my data (1).csv"}
    meta = harness.run("dataset", "csv", {"source": source}, name="csvup").metadata
    assert meta["source"] == {"kind": "upload", "filename": "my data (1).csv"} and meta["rowCount"] == 1
    ran = harness.run("dataset", "generic", {"source": source}, name="blob")
    assert ran.ref.kind == "file" and ran.ref.files == ["my_data__1_.csv"]
    assert ran.metadata["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert Path(ran.load()).read_bytes() == b"a,b\n1,2\n"


def test_url_download_needs_the_allow_list_for_loopback(harness: Harness, web: WebServer) -> None:
    (web.root / "iris.csv").write_text("x,y\n1,a\n2,b\n")
    params = {"source": {"kind": "url", "url": web.url("iris.csv")}}
    with pytest.raises(StepError, match="loopback/private"):
        harness.run("dataset", "csv", params)
    harness.policy = WorkerPolicy(url_allow_hosts=["127.0.0.1"])
    assert harness.run("dataset", "csv", params).metadata["rowCount"] == 2
    generic = harness.run("dataset", "generic", params, name="file")
    assert generic.ref.files == ["iris.csv"]
    assert not [p for p in generic.ctx.work_dir.iterdir() if p.name.startswith(".download")]


def test_redirects_are_checked_at_every_hop(harness: Harness, web: WebServer) -> None:
    (web.root / "d.csv").write_text("x\n1\n")
    harness.policy = WorkerPolicy(url_allow_hosts=["127.0.0.1"])
    # localhost is the same machine under a name that is not allow-listed
    hop = web.url(f"redirect?to={web.url('d.csv', host='localhost')}")
    with pytest.raises(StepError, match="localhost resolves to"):
        harness.run("dataset", "csv", {"source": {"kind": "url", "url": hop}})
    fine = web.url(f"redirect?to={web.url('d.csv')}")
    assert harness.run("dataset", "csv", {"source": {"kind": "url", "url": fine}}).metadata["rowCount"] == 1


def test_a_redirect_to_loopback_is_refused_by_the_policy(
    tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker asks the API's policy about every hop: the first (allow-listed by name) passes, the
    redirect to the same server by a loopback address (here IPv4-mapped IPv6) does not."""
    (web.root / "d.csv").write_text("x\n1\n")
    asked: list[str] = []

    def spy(url: str, allow_hosts: Collection[str] = ()) -> source_policy.CheckedUrl:
        asked.append(url)
        return source_policy.check_url(url, allow_hosts)

    monkeypatch.setattr(downloads, "check_url", spy)
    loopback = f"http://[::ffff:127.0.0.1]:{web.port}/d.csv"
    first = web.url(f"redirect?to={loopback}", host="localhost")
    dest = tmp_path / "d.csv"
    with pytest.raises(StepError, match=r"loopback, embedded IPv4 127\.0\.0\.1.*ORCHESTRA_URL_ALLOWLIST"):
        download_to_file(first, dest, max_bytes=1000, allow_hosts=["localhost"])
    assert asked == [first, loopback] and not dest.exists()
    # the same hop allowed by the policy goes through
    direct = web.url(f"redirect?to={web.url('d.csv', host='localhost')}", host="localhost")
    assert download_to_file(direct, dest, max_bytes=1000, allow_hosts=["localhost"]).size == 4


def test_worker_refuses_credentials_in_urls(tmp_path: Path, web: WebServer) -> None:
    (web.root / "d.csv").write_text("x\n1\n")
    url = f"http://user:secret@127.0.0.1:{web.port}/d.csv"
    with pytest.raises(StepError, match="credentials") as caught:
        download_to_file(url, tmp_path / "d.csv", max_bytes=1000, allow_hosts=["127.0.0.1"])
    assert "secret" not in str(caught.value)


def test_download_size_limit_and_schemes(tmp_path: Path, web: WebServer) -> None:
    (web.root / "big.bin").write_bytes(b"x" * 5000)
    dest = tmp_path / "big.bin"
    with pytest.raises(StepError, match="exceeds the limit"):
        download_to_file(web.url("big.bin"), dest, max_bytes=4000, allow_hosts=["127.0.0.1"])
    assert not dest.exists()
    for url in ("file:///etc/passwd", "ftp://example.org/x", "http://"):
        with pytest.raises(StepError):
            download_to_file(url, dest, max_bytes=10)


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..") == "data.bin"
    assert safe_filename(".hidden.csv") == "hidden.csv"
    assert safe_filename("résumé 2024.csv") == "r_sum__2024.csv"


def test_the_source_is_read_with_the_request_model(harness: Harness) -> None:
    # The API always writes a source; a step without one (or with an unknown kind) fails with a clear error.
    with pytest.raises(StepError, match="parameter 'source' must be"):
        harness.run("dataset", "csv", {})
    with pytest.raises(StepError, match="do not fit dataset/csv: source"):
        harness.run("dataset", "csv", {"source": {"kind": "ftp", "path": "/x"}})
