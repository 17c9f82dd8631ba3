"""The modern Python client: one :class:`Client` over one ``httpx.Client`` for the whole REST API.

    with Client("http://127.0.0.1:8080") as orchestra:
        orchestra.upload("dataset", "csv", "iris", "iris.csv")
        orchestra.create("model", "scikitlearn", name="lr", modulePath="sklearn.linear_model",
                         **{"class": "LogisticRegression"})
        metadata = orchestra.wait("iris")

Body fields are the server's canonical (camelCase) names. Waiting uses the server's long-poll
(``GET /observe/{name}?timeout=``), never database credentials.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import quote

import httpx

from automl_orchestra import __version__
from automl_orchestra.client.errors import (
    ConnectionError,
    NotFoundError,
    ServerError,
    StepFailedError,
    WaitTimeoutError,
    error_from_response,
)

__all__ = [
    "DEFAULT_URL",
    "FAILED_STATUSES",
    "MAX_OBSERVE_S",
    "SETTLED_STATUSES",
    "Client",
    "iter_sse",
    "name_from_url",
]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_API_PREFIX = "/api/v1"
LO_API_PREFIX = "/api/learningOrchestra/v1"
URL_ENV = "ORCHESTRA_URL"
TOKEN_ENV = "ORCHESTRA_TOKEN"

#: Statuses after which a step changes no more until it is re-executed.
SETTLED_STATUSES = frozenset({"finished", "failed", "cancelled", "stale"})
#: Settled statuses that ``wait`` reports as :class:`StepFailedError`.
FAILED_STATUSES = frozenset({"failed", "cancelled"})
#: The server's longest long-poll.
MAX_OBSERVE_S = 300

# Module-level aliases: inside ``Client`` the name ``list`` is a method.
Metadata = dict[str, Any]
MetadataList = list[dict[str, Any]]
JSONList = list[Any]
FileSource = str | os.PathLike[str] | IO[bytes]


def name_from_url(url: str) -> str:
    """The step name at the end of a step URL (``/api/v1/model/scikitlearn/lr`` -> ``lr``)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def _segment(value: str) -> str:
    return quote(value, safe="")


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _observe_seconds(seconds: float) -> float:
    """The ``timeout`` query value, within the server's bounds (whole seconds when it is whole)."""
    value = min(float(MAX_OBSERVE_S), max(0.0, round(seconds, 3)))
    return int(value) if value.is_integer() else value


class Client:
    """A connection to an AutoML Orchestra server.

    ``url`` defaults to ``$ORCHESTRA_URL`` or ``http://127.0.0.1:8080``, ``token`` to ``$ORCHESTRA_TOKEN``
    (sent as ``Authorization: Bearer <token>``). ``timeout`` bounds ordinary requests; long polls and
    streams get their own, longer read timeouts. Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        api_prefix: str = DEFAULT_API_PREFIX,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        raw_url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        self.url = self._normalize_url(raw_url, api_prefix)
        self.api_prefix = "/" + api_prefix.strip("/") if api_prefix.strip("/") else ""
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self.timeout = float(timeout)
        all_headers = {"Accept": "application/json", "User-Agent": f"automl-orchestra-client/{__version__}"}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        self._http = httpx.Client(
            base_url=self.url + self.api_prefix,
            headers=all_headers,
            timeout=httpx.Timeout(self.timeout),
            transport=transport,
        )

    @staticmethod
    def _normalize_url(url: str, api_prefix: str) -> str:
        url = url.strip()
        if "://" not in url:
            url = "http://" + url
        url = url.rstrip("/")
        for prefix in {api_prefix.rstrip("/"), DEFAULT_API_PREFIX, LO_API_PREFIX}:
            if prefix and url.endswith(prefix):
                url = url[: -len(prefix)]
        return url.rstrip("/")

    # ----- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, auth={'on' if self.token else 'off'})"

    # ----- low level -----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> httpx.Response:
        """Send one request (``path`` is relative to the API prefix); raise the typed error for 4xx/5xx."""
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = {key: value for key, value in params.items() if value is not None}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        if files is not None:
            kwargs["files"] = files
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._connection_error(exc) from exc
        self._raise_for_status(response)
        return response

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> Any:
        """Like :meth:`request`, returning the ``result`` member of the JSON answer."""
        response = self.request(
            method, path, params=params, json_body=json_body, data=data, files=files, timeout=timeout
        )
        return self._result(response)

    def _connection_error(self, exc: httpx.TransportError) -> ConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            return ConnectionError(f"request to {self.url} timed out ({exc})", code="timeout")
        return ConnectionError(f"cannot reach the server at {self.url}: {exc}", code="connection")

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        raise error_from_response(response.status_code, body, response.text)

    @staticmethod
    def _result(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            body = response.json()
        except ValueError:
            return response.text
        if isinstance(body, dict) and "result" in body:
            return body["result"]
        return body

    # ----- creating steps ------------------------------------------------------------------------------

    def submit(
        self,
        service: str,
        tool: str,
        body: Mapping[str, Any] | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> str:
        """``POST /{service}/{tool}`` (JSON ``body``, or multipart ``data`` + ``files``); returns its URL."""
        path = f"/{_segment(service)}/{_segment(tool)}"
        result = self.call(
            "POST",
            path,
            json_body=dict(body) if body is not None and files is None else None,
            data=data,
            files=files,
            timeout=timeout,
        )
        return str(result)

    def create_step(self, service: str, tool: str, body: Mapping[str, Any]) -> str:
        """Create a step from a request body with the server's field names; returns its name."""
        return name_from_url(self.submit(service, tool, body))

    def create(self, service: str, tool: str, /, **body: Any) -> str:
        """``create("model", "scikitlearn", name="lr", modulePath=..., classParameters=...)`` -> name.

        Use ``**{"class": "LogisticRegression"}`` for the ``class`` field (a Python keyword).
        """
        return self.create_step(service, tool, body)

    def upload(
        self,
        service: str,
        tool: str,
        name: str,
        file: FileSource,
        *,
        filename: str | None = None,
        **form: Any,
    ) -> str:
        """Create a dataset step from a local file (multipart upload); returns the step name.

        ``file`` is a path or a binary file object; ``form`` holds extra form fields (``separator``,
        ``header``, ...; non-string values are sent as JSON).
        """
        return name_from_url(self.upload_url(service, tool, name, file, filename=filename, **form))

    def upload_url(
        self,
        service: str,
        tool: str,
        name: str,
        file: FileSource,
        *,
        filename: str | None = None,
        **form: Any,
    ) -> str:
        """Like :meth:`upload`, returning the step URL."""
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            with path.open("rb") as handle:
                return self.upload_url(service, tool, name, handle, filename=filename or path.name, **form)
        fields = {"name": name}
        fields.update({key: _form_value(value) for key, value in form.items() if value is not None})
        default_name = Path(str(getattr(file, "name", "") or "upload")).name
        files = {"file": (filename or default_name, file, "application/octet-stream")}
        # the server answers only once the whole file is stored: no write bound, a generous read bound
        upload_timeout = httpx.Timeout(self.timeout, write=None, read=max(self.timeout, 300.0))
        return self.submit(service, tool, data=fields, files=files, timeout=upload_timeout)

    # ----- reading -------------------------------------------------------------------------------------

    def health(self) -> Metadata:
        """``GET /health``: ``{"status": "ok", "version": ...}``."""
        result: Metadata = self.call("GET", "/health")
        return result

    def get(self, name: str) -> Metadata:
        """The metadata document of a step."""
        result: Metadata = self.call("GET", f"/steps/{_segment(name)}")
        return result

    def exists(self, name: str) -> bool:
        """Whether a step of that name exists."""
        try:
            self.get(name)
        except NotFoundError:
            return False
        return True

    def content(
        self,
        service: str,
        tool: str,
        name: str,
        skip: int = 0,
        limit: int = 20,
        query: Mapping[str, Any] | None = None,
    ) -> JSONList:
        """A content page: element 0 is the metadata, then rows (tables) or the value (other outputs).

        ``query`` is a mapping of column equality filters; ``limit`` is at most 100.
        """
        params: dict[str, Any] = {"skip": skip, "limit": limit}
        if query:
            params["query"] = json.dumps(dict(query))
        result: JSONList = self.call("GET", f"/{_segment(service)}/{_segment(tool)}/{_segment(name)}", params=params)
        return result

    def list(
        self,
        service: str | None = None,
        status: str | None = None,
        *,
        tool: str | None = None,
        skip: int = 0,
        limit: int = 100,
    ) -> MetadataList:
        """Metadata of steps (oldest first), optionally only those of one service, tool and/or status."""
        params = {"service": service, "tool": tool, "status": status, "skip": skip, "limit": limit}
        result: MetadataList = self.call("GET", "/steps", params=params)
        return result

    def iter_steps(
        self,
        service: str | None = None,
        status: str | None = None,
        *,
        tool: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Metadata]:
        """Every matching step's metadata, fetched page by page."""
        skip = 0
        while True:
            page = self.list(service, status, tool=tool, skip=skip, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            skip += len(page)

    def list_tool(self, service: str, tool: str, *, skip: int = 0, limit: int = 100) -> MetadataList:
        """``GET /{service}/{tool}``: metadata of the steps of one kind."""
        result: MetadataList = self.call(
            "GET", f"/{_segment(service)}/{_segment(tool)}", params={"skip": skip, "limit": limit}
        )
        return result

    def runs(self, name: str) -> MetadataList:
        """Every run record of a step, oldest first."""
        result: MetadataList = self.call("GET", f"/steps/{_segment(name)}/runs")
        return result

    def logs(self, name: str, run: int | None = None) -> Metadata:
        """``{"run": N, "stdout": ..., "stderr": ...}`` of a run (default: the current one)."""
        result: Metadata = self.call("GET", f"/steps/{_segment(name)}/logs", params={"run": run})
        return result

    def artifacts(self, name: str) -> MetadataList:
        """``[{"name": "plot.png", "size": 123}, ...]``: the files a step's current run produced."""
        result: MetadataList = self.call("GET", f"/steps/{_segment(name)}/artifacts")
        return result

    def read_artifact(self, name: str, file: str) -> bytes:
        """The raw bytes of one artifact."""
        response = self.request(
            "GET",
            f"/steps/{_segment(name)}/artifacts/{quote(file, safe='/')}",
            timeout=httpx.Timeout(self.timeout, read=max(self.timeout, 300.0)),
        )
        return response.content

    def download(self, name: str, file: str, dest: str | os.PathLike[str] = ".") -> Path:
        """Stream an artifact to ``dest`` (a file path, or a directory that receives ``file``'s base name)."""
        target = Path(dest)
        if target.is_dir():
            target = target / Path(file).name
        partial = target.with_name(target.name + ".part")
        path = f"/steps/{_segment(name)}/artifacts/{quote(file, safe='/')}"
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(self.timeout, read=None)) as response:
                if not response.is_success:
                    response.read()
                    self._raise_for_status(response)
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise self._connection_error(exc) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target

    def lineage(self, name: str) -> Metadata:
        """``{"nodes": [metadata...], "edges": [{"parent", "child", "reference"}]}`` around a step."""
        result: Metadata = self.call("GET", f"/lineage/{_segment(name)}")
        return result

    # ----- changing steps ------------------------------------------------------------------------------

    def update(
        self,
        name: str,
        changes: Mapping[str, Any] | None = None,
        /,
        *,
        cascade: bool = False,
        **params: Any,
    ) -> str:
        """Re-execute a step with changed parameters (``PATCH``); returns the step URL.

        ``changes`` and ``params`` (server field names) are merged into the step's previous parameters.
        Its dependents become ``stale``, or re-run in order when ``cascade`` is true.
        """
        body = dict(changes or {})
        body.update(params)
        result = self.call(
            "PATCH",
            f"/steps/{_segment(name)}",
            params={"cascade": _bool_param(cascade)},
            json_body=body,
        )
        return str(result)

    def delete(self, name: str, cascade: bool = False) -> Any:
        """Delete a step (409 while others depend on it, unless ``cascade``); returns the server's message."""
        return self.call("DELETE", f"/steps/{_segment(name)}", params={"cascade": _bool_param(cascade)})

    def cancel(self, name: str) -> Any:
        """Cancel a pending or running step."""
        return self.call("POST", f"/steps/{_segment(name)}/cancel")

    # ----- observing -----------------------------------------------------------------------------------

    def observe(self, name: str, timeout: float = 30.0) -> Metadata:
        """One long poll: the metadata as soon as the step is settled, or after ``timeout`` seconds."""
        seconds = _observe_seconds(timeout)
        response = self.request(
            "GET",
            f"/observe/{_segment(name)}",
            params={"timeout": seconds},
            timeout=httpx.Timeout(self.timeout, read=seconds + self.timeout),
        )
        result: Metadata = self._result(response)
        return result

    def wait(
        self,
        name: str,
        timeout: float | None = None,
        poll: float = 60.0,
        raise_on_failure: bool = True,
        *,
        on_update: Callable[[Metadata], None] | None = None,
    ) -> Metadata:
        """Block until the step is settled (finished, failed, cancelled or stale); return its metadata.

        ``timeout`` bounds the whole wait (``None``: no bound) and raises :class:`WaitTimeoutError`;
        ``poll`` is the length of each long poll. A ``failed`` or ``cancelled`` step raises
        :class:`StepFailedError` unless ``raise_on_failure`` is false. ``on_update`` is called with every
        metadata document received. Brief connection losses and 5xx answers are retried.
        """
        started = time.monotonic()
        deadline = None if timeout is None else started + max(0.0, timeout)
        metadata: Metadata | None = None
        failures = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            chunk = max(1.0, poll) if remaining is None else max(0.0, min(poll, remaining))
            try:
                metadata = self.observe(name, chunk)
                failures = 0
            except (ConnectionError, ServerError) as exc:  # a restart or a network blip: retry a few times
                failures += 1
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeoutError(name, float(timeout or 0.0), metadata) from exc
                if failures > 5:
                    raise
                pause = min(0.25 * 2.0**failures, 5.0)
                time.sleep(pause if left is None else min(pause, left))
                continue
            if on_update is not None:
                on_update(metadata)
            status = metadata.get("status")
            if status in SETTLED_STATUSES:
                if raise_on_failure and status in FAILED_STATUSES:
                    raise StepFailedError(metadata)
                return metadata
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(name, float(timeout or 0.0), metadata)

    def events(self, name: str, *, timeout: float | None = None) -> Iterator[Metadata]:
        """Iterate the step's Server-Sent Events as ``{"event", "data", "id"}`` dicts.

        ``data`` is decoded JSON (the metadata document for ``status`` events). The stream ends after the
        step settles. ``timeout`` bounds the silence between two events (``None``: unbounded).
        """
        path = f"/observe/{_segment(name)}/events"
        try:
            with self._http.stream(
                "GET",
                path,
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(self.timeout, read=timeout),
            ) as response:
                if not response.is_success:
                    response.read()
                    self._raise_for_status(response)
                yield from iter_sse(response.iter_lines())
        except httpx.TransportError as exc:
            raise self._connection_error(exc) from exc

    def status_events(self, name: str, *, timeout: float | None = None) -> Iterator[Metadata]:
        """The metadata documents of the step's ``status`` events (see :meth:`events`)."""
        for event in self.events(name, timeout=timeout):
            if event.get("event") in {"status", "message"} and isinstance(event.get("data"), dict):
                yield event["data"]


class ClientOwner:
    """Base of the service wrappers: uses the given :class:`Client`, or creates one and closes it on
    ``close()`` / leaving a ``with`` block."""

    def __init__(self, client: Client | None, factory: Callable[[], Client]) -> None:
        self._owns_client = client is None
        self.client = client or factory()

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _bool_param(value: bool) -> str:
    return "true" if value else "false"


def iter_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Parse Server-Sent Events from text lines (without their line endings).

    Yields ``{"event": type, "data": decoded, "id": last_id}``; ``data`` lines are joined with newlines and
    decoded as JSON when possible; comment lines (``:``) are keep-alives and ignored.
    """
    event_type = ""
    data_lines: list[str] = []
    last_id: str | None = None

    def dispatch() -> dict[str, Any]:
        raw = "\n".join(data_lines)
        data: Any
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw
        return {"event": event_type or "message", "data": data, "id": last_id}

    for raw_line in lines:
        line = raw_line.rstrip("\r\n")
        if not line:
            if data_lines or event_type:
                yield dispatch()
            event_type, data_lines = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event_type = value
        elif field == "data":
            data_lines.append(value)
        elif field == "id":
            last_id = value
        # "retry" and unknown fields are ignored
    if data_lines:
        yield dispatch()
