"""The ``orchestra`` command: run the server, and list, inspect, wait for, re-run and delete steps.

    orchestra serve --port 8080 --tokens "secret:admin"
    orchestra ls --service model
    orchestra show NAME [--json]
    orchestra wait NAME [--timeout S]          # exit 0 finished, 1 failed/cancelled, 2 timed out
    orchestra logs NAME [--run N]
    orchestra rerun NAME --set classParameters.C=0.5 [--cascade] [--wait]
    orchestra rm NAME [--cascade]
    orchestra models list | show NAME[@ALIAS] | register NAME STEP | versions NAME | alias NAME ALIAS VERSION
    orchestra models history NAME ALIAS | archive NAME VERSION [--restore] | delete NAME VERSION

``--url`` (default ``$ORCHESTRA_URL`` or http://127.0.0.1:8080) and ``--token`` (default
``$ORCHESTRA_TOKEN``) may come before or after the command. Only the standard library and httpx are used.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import queue
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from automl_orchestra import __version__
from automl_orchestra.client.errors import OrchestraError
from automl_orchestra.client.http import DEFAULT_URL, FAILED_STATUSES, SETTLED_STATUSES, TOKEN_ENV, URL_ENV, Client
from automl_orchestra.client.models import ModelRegistry

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from automl_orchestra.config import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 2

_SPINNER = "|/-\\"


# ----- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestra",
        description="AutoML Orchestra: run the server and manage pipeline steps.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_connection_options(parser, suppress=False)

    # The connection options are accepted after the command too.
    connection = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_connection_options(connection, suppress=True)

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve", help="run the API server", description="Run the API server.", allow_abbrev=False
    )
    add_settings_options(serve)
    serve.set_defaults(handler=cmd_serve)

    ls = commands.add_parser("ls", parents=[connection], help="list steps", allow_abbrev=False)
    ls.add_argument("--service", help="only steps of this service (dataset, model, train, ...)")
    ls.add_argument(
        "--status", help="only steps with this status (pending, running, finished, failed, cancelled, stale)"
    )
    ls.add_argument("--limit", type=int, default=1000, help="at most this many steps (default: 1000)")
    ls.add_argument("--json", action="store_true", help="print the metadata documents as JSON")
    ls.set_defaults(handler=cmd_ls)

    show = commands.add_parser("show", parents=[connection], help="show a step's metadata", allow_abbrev=False)
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print the metadata document as JSON")
    show.set_defaults(handler=cmd_show)

    wait = commands.add_parser(
        "wait",
        parents=[connection],
        help="wait until a step is settled",
        description="Wait until a step is settled. Exit status: 0 finished, 1 failed or cancelled, 2 timed out.",
        allow_abbrev=False,
    )
    wait.add_argument("name")
    wait.add_argument("--timeout", type=float, default=None, help="give up after S seconds (exit status 2)")
    wait.set_defaults(handler=cmd_wait)

    logs = commands.add_parser(
        "logs",
        parents=[connection],
        help="print a run's captured stdout and stderr",
        description="Print a run's captured stdout (to stdout) and stderr (to stderr).",
        allow_abbrev=False,
    )
    logs.add_argument("name")
    logs.add_argument("--run", type=int, default=None, help="run number (default: the current run)")
    logs.set_defaults(handler=cmd_logs)

    rerun = commands.add_parser(
        "rerun",
        parents=[connection],
        help="re-execute a step, optionally with changed parameters",
        description=(
            "Re-execute a step (PATCH). --set KEY=VALUE changes a parameter; VALUE is parsed as JSON when it "
            "can be (else taken as a string); a dotted KEY (methodParameters.C=0.5) changes one entry of a "
            "nested parameter and keeps the others."
        ),
        allow_abbrev=False,
    )
    rerun.add_argument("name")
    rerun.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help="changed parameter"
    )
    rerun.add_argument("--cascade", action="store_true", help="re-run the dependents too (else they become stale)")
    rerun.add_argument("--wait", action="store_true", help="wait until the step is settled")
    rerun.add_argument("--timeout", type=float, default=None, help="with --wait: give up after S seconds")
    rerun.set_defaults(handler=cmd_rerun)

    rm = commands.add_parser("rm", parents=[connection], help="delete a step", allow_abbrev=False)
    rm.add_argument("name")
    rm.add_argument("--cascade", action="store_true", help="delete the steps that depend on it too")
    rm.set_defaults(handler=cmd_rm)

    cancel = commands.add_parser("cancel", parents=[connection], help="cancel a running step", allow_abbrev=False)
    cancel.add_argument("name")
    cancel.set_defaults(handler=cmd_cancel)

    models = commands.add_parser(
        "ts-models", parents=[connection], help="list trained time-series pipelines", allow_abbrev=False
    )
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=cmd_ts_models)

    compare = commands.add_parser(
        "compare",
        parents=[connection],
        help="run a dataset through several automl engines (with --dataset) and print the comparison table",
        allow_abbrev=False,
    )
    compare.add_argument("name", help="the automl/compare step")
    compare.add_argument("--dataset", help="create the comparison on this dataset step (else: show an existing one)")
    compare.add_argument("--target", help="the target column (with --dataset)")
    compare.add_argument("--engines", help="comma-separated engines (default: every installed tabular engine)")
    compare.add_argument("--budget", type=float, help="time budget per engine, seconds")
    compare.add_argument("--metric", help="e.g. roc_auc, accuracy, r2")
    compare.add_argument("--task", choices=("classification", "regression"), default="classification")
    compare.add_argument("--holdout", type=float, help="share of rows held out to score the engines")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(handler=cmd_compare)
    add_models_parser(commands, connection)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default_url = None if suppress else os.environ.get(URL_ENV) or DEFAULT_URL
    default_token = None if suppress else os.environ.get(TOKEN_ENV) or None
    parser.add_argument(
        "--url",
        default=argparse.SUPPRESS if suppress else default_url,
        help=f"server URL (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=argparse.SUPPRESS if suppress else default_token,
        help=f"API token (default: ${TOKEN_ENV})",
    )


# ----- serve: one flag per Settings field -------------------------------------------------------------


def _settings_fields() -> dict[str, FieldInfo]:
    from automl_orchestra.config import Settings

    return dict(Settings.model_fields)


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One ``--kebab-case`` flag per ``Settings`` field; ``None`` (absent) means "environment or default"."""
    for name, field in _settings_fields().items():
        flag = "--" + name.replace("_", "-")
        annotation = _unwrap_optional(field.annotation)
        help_text = f"{field.description or ''} (env ORCHESTRA_{name.upper()}; default: {_default_text(field)})"
        help_text = help_text.strip().replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(annotation) is typing.Literal:
            choices = [str(choice) for choice in typing.get_args(annotation)]
            parser.add_argument(flag, choices=choices, metavar="{" + ",".join(choices) + "}", **kwargs)
            continue
        if annotation in (int, float):
            kwargs["type"] = annotation
            kwargs["metavar"] = "N" if annotation is int else "X"
        elif annotation is Path:
            kwargs["metavar"] = "PATH"
        else:
            kwargs["metavar"] = "VALUE"
        parser.add_argument(flag, **kwargs)


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed"
    if field.default is None:
        return "none"
    if field.default == "":
        return '""'
    return str(field.default)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` built from the given ``serve`` flags (absent ones come from the environment)."""
    from automl_orchestra.config import Settings

    given = {name: getattr(args, name) for name in _settings_fields() if getattr(args, name, None) is not None}
    return Settings(**given)


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        settings = settings_from_args(args)
        settings.check()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        print(f"orchestra serve: {exc}", file=err)
        return EXIT_USAGE
    from automl_orchestra.api.server import serve  # the API stack is only imported to serve

    serve(settings)
    return EXIT_OK


# ----- client commands --------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, token=args.token or None)


def _short_time(value: Any) -> str:
    """``2024-05-01T12:03:04.123456+00:00`` -> ``2024-05-01 12:03:04``."""
    if not value:
        return "-"
    text = str(value).replace("T", " ")
    return text[:19]


def _kind(metadata: dict[str, Any]) -> str:
    return f"{metadata.get('service', '?')}/{metadata.get('tool', '?')}"


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def cmd_ls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        steps = []
        for metadata in client.iter_steps(args.service, args.status):
            steps.append(metadata)
            if len(steps) >= args.limit:
                break
    if args.json:
        print(json.dumps(steps, indent=2, default=str), file=out)
        return EXIT_OK
    if not steps:
        print("no steps", file=err)
        return EXIT_OK
    rows = [("NAME", "SERVICE/TOOL", "STATUS", "RUNS", "UPDATED")]
    for metadata in steps:
        rows.append(
            (
                str(metadata.get("name", "?")),
                _kind(metadata),
                str(metadata.get("status", "?")),
                str(metadata.get("runs", "-")),
                _short_time(metadata.get("updatedAt")),
            )
        )
    _table(rows, out)
    return EXIT_OK


def _progress_text(metadata: dict[str, Any]) -> str:
    progress = metadata.get("progress")
    if not isinstance(progress, dict):
        return ""
    parts = []
    fraction = progress.get("fraction")
    if isinstance(fraction, int | float):
        parts.append(f"{100 * float(fraction):.0f}%")
    if progress.get("message"):
        parts.append(str(progress["message"]))
    return " ".join(parts)


def _error_text(metadata: dict[str, Any]) -> str:
    error = metadata.get("error")
    if not error:
        return ""
    if not isinstance(error, dict):
        return str(error)
    parts = [str(error[key]) for key in ("reason", "exception") if error.get(key)]
    return "; ".join(dict.fromkeys(parts))


def format_metadata(metadata: dict[str, Any]) -> str:
    """A human-readable view of a metadata document."""
    lines: list[str] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            lines.append(f"{label + ':':<13}{value}")

    add("name", metadata.get("name"))
    add("kind", _kind(metadata))
    status = str(metadata.get("status", "?"))
    if metadata.get("runs") is not None:
        status += f" (run {metadata.get('run', '?')} of {metadata.get('runs')})"
    add("status", status)
    add("description", metadata.get("description"))
    add("created", _short_time(metadata.get("createdAt")))
    add("updated", _short_time(metadata.get("updatedAt")))
    add("parents", ", ".join(map(str, metadata.get("parents") or [])))
    add("progress", _progress_text(metadata))
    add("error", _error_text(metadata))
    output = metadata.get("output")
    if isinstance(output, dict):
        files = ", ".join(map(str, output.get("files") or []))
        add("output", f"{output.get('kind', '?')}" + (f" ({files})" if files else ""))
    add("rows", metadata.get("rowCount"))
    types_ = metadata.get("types")
    if isinstance(types_, dict) and types_:
        add("fields", ", ".join(f"{field} ({kind})" for field, kind in types_.items()))
    elif metadata.get("fields"):
        add("fields", ", ".join(map(str, metadata["fields"])))
    if metadata.get("metrics"):
        add("metrics", json.dumps(metadata["metrics"], default=str))
    add("url", metadata.get("url"))
    if metadata.get("parameters"):
        lines.append("parameters:")
        lines.extend("  " + line for line in json.dumps(metadata["parameters"], indent=2, default=str).splitlines())
    error = metadata.get("error")
    if isinstance(error, dict) and error.get("traceback"):
        lines.append("traceback:")
        lines.extend("  " + line for line in str(error["traceback"]).rstrip().splitlines())
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        metadata = client.get(args.name)
    if args.json:
        print(json.dumps(metadata, indent=2, default=str), file=out)
    else:
        print(format_metadata(metadata), file=out)
    return EXIT_OK


class _Display:
    """Progress on ``err``: a spinner line on a terminal, one line per change otherwise."""

    def __init__(self, name: str, err: TextIO) -> None:
        self.name = name
        self.err = err
        self.tty = bool(getattr(err, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.tick = 0
        self.last_line: str | None = None
        self.status: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, metadata: dict[str, Any]) -> None:
        status = str(metadata.get("status", "?"))
        detail = _progress_text(metadata)
        line = f"{self.name}: {status}" + (f" {detail}" if detail else "")
        if status != self.status or line != self.last_line:
            self.status = status
            self.last_line = line
            self._clear()
            print(f"{line} [{self.elapsed():.1f}s]", file=self.err, flush=True)
        self.spin()

    def spin(self) -> None:
        if not self.tty or self.last_line is None:
            return
        self.tick += 1
        spinner = _SPINNER[self.tick % len(_SPINNER)]
        self.err.write(f"\r{spinner} {self.last_line} {self.elapsed():.1f}s\x1b[K")
        self.err.flush()

    def _clear(self) -> None:
        if self.tty:
            self.err.write("\r\x1b[K")

    def finish(self) -> None:
        self._clear()
        if self.tty:
            self.err.flush()


def _feed_updates(client: Client, name: str, updates: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    """Put ("status", metadata) for every change, then ("done", None) or ("error", exc).

    Uses the Server-Sent Events stream; falls back to repeated long polls if the stream is unavailable or
    ends before the step is settled.
    """
    try:
        try:
            for metadata in client.status_events(name):
                updates.put(("status", metadata))
                if metadata.get("status") in SETTLED_STATUSES or stop.is_set():
                    updates.put(("done", None))
                    return
        except OrchestraError:
            pass  # no stream: poll instead
        while not stop.is_set():
            metadata = client.observe(name, timeout=2.0)
            updates.put(("status", metadata))
            if metadata.get("status") in SETTLED_STATUSES:
                break
        updates.put(("done", None))
    except Exception as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
        updates.put(("error", exc))


def wait_with_progress(client: Client, name: str, timeout: float | None, out: TextIO, err: TextIO) -> int:
    """Wait for a step showing its progress on ``err``; return the exit status of ``orchestra wait``."""
    display = _Display(name, err)
    metadata = client.get(name)
    display.update(metadata)
    if metadata.get("status") not in SETTLED_STATUSES:
        updates: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        feeder = threading.Thread(target=_feed_updates, args=(client, name, updates, stop), daemon=True)
        feeder.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while metadata.get("status") not in SETTLED_STATUSES:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    display.finish()
                    print(
                        f"{name}: timed out after {timeout:g} s (status: {metadata.get('status')})",
                        file=err,
                    )
                    return EXIT_TIMEOUT
                try:
                    kind, payload = updates.get(timeout=0.1 if remaining is None else min(0.1, remaining))
                except queue.Empty:
                    display.spin()
                    continue
                if kind == "status":
                    metadata = payload
                    display.update(metadata)
                elif kind == "error":
                    raise payload
                else:  # "done": the feeder saw a settled status (already handled) or gave up
                    metadata = client.get(name)
                    break
        finally:
            stop.set()
            display.finish()
    status = metadata.get("status")
    if status in FAILED_STATUSES:
        reason = _error_text(metadata) or "no reason recorded"
        print(f"{name}: {status}: {reason}", file=err)
        return EXIT_FAILED
    if status not in SETTLED_STATUSES:  # the feeder ended without a settled status
        print(f"{name}: stopped waiting (status: {status})", file=err)
        return EXIT_FAILED
    print(f"{name}: {status} in {display.elapsed():.1f}s", file=out)
    return EXIT_OK


def cmd_wait(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        return wait_with_progress(client, args.name, args.timeout, out, err)


def cmd_logs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        logs = client.logs(args.name, args.run)
    stdout = str(logs.get("stdout") or "")
    stderr = str(logs.get("stderr") or "")
    if stdout:
        out.write(stdout if stdout.endswith("\n") else stdout + "\n")
        out.flush()
    if stderr:
        err.write(stderr if stderr.endswith("\n") else stderr + "\n")
        err.flush()
    return EXIT_OK


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (``5``, ``true``, ``[1,2]``, ``{"a":1}``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(assignments: Sequence[str], current: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The PATCH body of ``--set KEY=VALUE`` items.

    A dotted key changes one entry of a nested parameter: the whole top-level parameter is sent, built from
    ``current()`` (the step's present parameters, fetched only when needed), so no sibling entry is lost.
    """
    changes: dict[str, Any] = {}
    parameters: dict[str, Any] | None = None
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        value = parse_value(raw)
        if "." not in key:
            changes[key] = value
            continue
        top, *path = key.split(".")
        if top not in changes:
            if parameters is None:
                parameters = current()
            changes[top] = copy.deepcopy(parameters.get(top, {}))
        node = changes[top]
        for part in path[:-1]:
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part!r} is inside a value that is not an object")
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {key}: the parent of {path[-1]!r} is not an object")
        node[path[-1]] = value
    return changes


def cmd_rerun(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        try:
            changes = parse_assignments(args.assignments, lambda: dict(client.get(args.name).get("parameters") or {}))
        except ValueError as exc:
            print(f"orchestra rerun: {exc}", file=err)
            return EXIT_USAGE
        url = client.update(args.name, changes, cascade=args.cascade)
        print(url, file=out)
        if args.wait:
            return wait_with_progress(client, args.name, args.timeout, out, err)
    return EXIT_OK


def cmd_rm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        result = client.delete(args.name, cascade=args.cascade)
    print(result if isinstance(result, str) else f"deleted {args.name}", file=out)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        result = client.cancel(args.name)
    print(result if isinstance(result, str) else f"cancelled {args.name}", file=out)
    return EXIT_OK


def cmd_ts_models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from automl_orchestra.client.timeseries import TimeSeriesService

    with _client(args) as client:
        models = TimeSeriesService(client=client).models()
    if args.json:
        print(json.dumps(models, indent=2, default=str), file=out)
        return EXIT_OK
    if not models:
        print("no time-series models", file=err)
        return EXIT_OK
    rows = [("MODEL", "STATUS", "CV ACCURACY", "CV ROC AUC", "SHAPE", "LEARNER")]
    for model in models:
        rows.append(
            (
                str(model.get("modelId")),
                str(model.get("status")),
                _number(model.get("mean_cv_accuracy")),
                _number(model.get("mean_cv_roc_auc")),
                "x".join(map(str, model.get("trainShape") or [])) or "-",
                str(model.get("bestLearner") or "-"),
            )
        )
    _table(rows, out)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from automl_orchestra.client.learning_orchestra import AutoMLCompare

    with _client(args) as client:
        comparison = AutoMLCompare(client=client)
        if args.dataset:
            if not args.target:
                print("--target is required with --dataset", file=err)
                return EXIT_USAGE
            engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
            metadata = comparison.run_compare_sync(
                args.name, args.dataset, args.target, engines=engines, time_budget=args.budget,
                metric=args.metric, holdout=args.holdout, task=args.task,
            )  # fmt: skip
            if metadata.get("status") != "finished":
                print(f"comparison {args.name} {metadata.get('status')}: {metadata.get('error')}", file=err)
                return EXIT_FAILED
        rows = comparison.comparison(args.name)
    if args.json:
        print(json.dumps(rows, indent=2, default=str), file=out)
        return EXIT_OK
    table = [("ENGINE", "STATUS", "MODEL", "CV SCORE", "HOLDOUT", "METRIC", "FIT S", "PREDICT MS/ROW", "REASON")]
    for row in rows:
        per_row = row.get("predictSecondsPerRow")
        table.append(
            (
                str(row.get("engine")),
                str(row.get("status")),
                str(row.get("model") or "-"),
                _number(row.get("cvScore")),
                _number(row.get("holdoutScore")),
                str(row.get("holdoutMetric") or "-"),
                f"{row['fitSeconds']:.1f}" if isinstance(row.get("fitSeconds"), int | float) else "-",
                f"{per_row * 1000:.4f}" if isinstance(per_row, int | float) else "-",
                str(row.get("reason") or "")[:80],
            )
        )
    _table(table, out)
    return EXIT_OK


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


# ----- models: the registry ----------------------------------------------------------------------------


def add_models_parser(commands: Any, connection: argparse.ArgumentParser) -> None:
    """``orchestra models COMMAND``: registered models, their versions and aliases."""
    models = commands.add_parser(
        "models",
        help="the model registry: versions, aliases and their history",
        description="Register trained steps as immutable model versions, move aliases, archive and delete.",
        allow_abbrev=False,
    )
    actions = models.add_subparsers(dest="models_command", metavar="COMMAND")
    actions.required = True

    def action(name: str, help_text: str, handler: Callable[..., int], json_option: bool = True) -> Any:
        parser = actions.add_parser(name, parents=[connection], help=help_text, allow_abbrev=False)
        if json_option:
            parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=handler)
        return parser

    action("list", "list registered models", cmd_models_list)
    show = action("show", "show a model, a version (--version) or the version NAME@ALIAS points to", cmd_models_show)
    show.add_argument("name", help="a model name, or NAME@ALIAS")
    show.add_argument("--version", type=int, help="show this version")
    register = action("register", "register a finished step's model as a new version", cmd_models_register)
    register.add_argument("name", help="the model (created on first registration)")
    register.add_argument("step", help="a finished train, tune, automl… step")
    register.add_argument("--run", type=int, help="run number (default: the step's current run)")
    register.add_argument("--description", help="the version's description")
    register.add_argument("--tag", dest="tags", action="append", default=[], metavar="KEY=VALUE", help="a tag")
    versions = action("versions", "list a model's versions", cmd_models_versions)
    versions.add_argument("name")
    versions.add_argument("--status", choices=("ready", "archived"), help="only versions with this status")
    alias = action("alias", "set or move an alias (or remove it with --delete)", cmd_models_alias)
    alias.add_argument("name")
    alias.add_argument("alias", help="e.g. champion, staging")
    alias.add_argument("version", type=int, nargs="?", help="the version it points to (not with --delete)")
    alias.add_argument("--delete", action="store_true", help="remove the alias")
    history = action("history", "every move of an alias", cmd_models_history)
    history.add_argument("name")
    history.add_argument("alias")
    archive = action("archive", "archive a version (it stays readable)", cmd_models_archive)
    archive.add_argument("name")
    archive.add_argument("version", type=int)
    archive.add_argument("--restore", action="store_true", help="make an archived version ready again")
    delete = action("delete", "delete a version and its files", cmd_models_delete, json_option=False)
    delete.add_argument("name")
    delete.add_argument("version", type=int)
    predict = action("predict", "predict rows with a served version (online)", cmd_models_predict)
    predict.add_argument("name", help="a model (its newest ready version), or NAME@ALIAS")
    predict.add_argument(
        "rows", help="a JSON file of records (a list of objects, or one object), a CSV file with a header, or - (JSON)"
    )
    predict.add_argument("--version", type=int, help="predict with this version")
    predict.add_argument("--no-probabilities", action="store_true", help="predictions only, no class probabilities")


def _registry(args: argparse.Namespace) -> ModelRegistry:
    """A registry that owns its client: leaving its ``with`` block closes the connection."""
    return ModelRegistry(args.url, token=args.token or None)


def _print_json(value: Any, out: TextIO) -> int:
    print(json.dumps(value, indent=2, default=str), file=out)
    return EXIT_OK


def cmd_models_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _registry(args) as registry:
        models = list(registry.iter_models())
    if args.json:
        return _print_json(models, out)
    if not models:
        print("no models", file=err)
        return EXIT_OK
    rows = [("MODEL", "VERSIONS", "LATEST", "ALIASES", "UPDATED")]
    for model in models:
        aliases = ", ".join(f"{alias}->{version}" for alias, version in (model.get("aliases") or {}).items())
        rows.append(
            (
                str(model.get("name")),
                str(model.get("versions", 0)),
                str(model.get("latestVersion") or "-"),
                aliases or "-",
                _short_time(model.get("updatedAt")),
            )
        )
    _table(rows, out)
    return EXIT_OK


def format_version(version: dict[str, Any]) -> str:
    """A human-readable view of a version document."""
    source = version.get("source") or {}
    signature = version.get("signature") or {}
    output = signature.get("output") or {}
    inputs = signature.get("inputs")
    lines = [
        f"{'model:':<13}{version.get('model')} version {version.get('version')} ({version.get('status')})",
        f"{'aliases:':<13}{', '.join(version.get('aliases') or []) or '-'}",
        f"{'engine:':<13}{version.get('engine')} (environment {version.get('environment')})",
        f"{'source:':<13}{source.get('service')}/{source.get('tool')} {source.get('step')} run {source.get('run')}",
        f"{'files:':<13}{', '.join(map(str, version.get('files') or []))} ({version.get('sizeBytes')} bytes)",
        f"{'hash:':<13}{version.get('contentHash')}",
        f"{'task:':<13}{output.get('task') or '-'}, target {output.get('target') or '-'}",
    ]
    if output.get("classes") is not None:
        lines.append(f"{'classes:':<13}{', '.join(map(str, output['classes']))}")
    if inputs:
        lines.append(f"{'inputs:':<13}" + ", ".join(f"{c.get('name')} ({c.get('type')})" for c in inputs))
    metrics = (version.get("lineage") or {}).get("metrics")
    if metrics:
        lines.append(f"{'metrics:':<13}{json.dumps(metrics, default=str)}")
    if version.get("description"):
        lines.append(f"{'description:':<13}{version['description']}")
    if version.get("tags"):
        lines.append(f"{'tags:':<13}{json.dumps(version['tags'])}")
    lines.append(f"{'registered:':<13}{_short_time(version.get('createdAt'))} by {version.get('registeredBy')}")
    lines.append(f"{'url:':<13}{version.get('url')}")
    return "\n".join(lines)


def format_model(model: dict[str, Any]) -> str:
    aliases = ", ".join(f"{alias} -> {version}" for alias, version in (model.get("aliases") or {}).items())
    lines = [
        f"{'model:':<13}{model.get('name')}",
        f"{'versions:':<13}{model.get('versions')} (latest {model.get('latestVersion') or '-'})",
        f"{'aliases:':<13}{aliases or '-'}",
    ]
    if model.get("description"):
        lines.append(f"{'description:':<13}{model['description']}")
    if model.get("tags"):
        lines.append(f"{'tags:':<13}{json.dumps(model['tags'])}")
    lines.append(f"{'updated:':<13}{_short_time(model.get('updatedAt'))}")
    lines.append(f"{'url:':<13}{model.get('url')}")
    return "\n".join(lines)


def cmd_models_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _registry(args) as registry:
        version = args.version
        document = registry.version(args.name, version) if version is not None else registry.get(args.name)
    if args.json:
        return _print_json(document, out)
    is_version = "version" in document and "model" in document  # a version, or the one NAME@ALIAS points to
    print(format_version(document) if is_version else format_model(document), file=out)
    return EXIT_OK


def cmd_models_register(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    tags: dict[str, str] = {}
    for item in args.tags:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            print(f"orchestra models register: --tag expects KEY=VALUE, got {item!r}", file=err)
            return EXIT_USAGE
        tags[key.strip()] = value
    with _registry(args) as registry:
        version = registry.register(args.name, args.step, run=args.run, description=args.description, tags=tags)
    if args.json:
        return _print_json(version, out)
    print(f"registered {version['model']} version {version['version']} from {args.step}: {version['url']}", file=out)
    return EXIT_OK


def cmd_models_versions(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _registry(args) as registry:
        versions = registry.versions(args.name, status=args.status, limit=1000)
    if args.json:
        return _print_json(versions, out)
    if not versions:
        print(f"model {args.name} has no versions", file=err)
        return EXIT_OK
    rows = [("VERSION", "STATUS", "ALIASES", "ENGINE", "STEP", "RUN", "CREATED")]
    for version in versions:
        source = version.get("source") or {}
        rows.append(
            (
                str(version.get("version")),
                str(version.get("status")),
                ", ".join(version.get("aliases") or []) or "-",
                str(version.get("engine")),
                str(source.get("step")),
                str(source.get("run")),
                _short_time(version.get("createdAt")),
            )
        )
    _table(rows, out)
    return EXIT_OK


def cmd_models_alias(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.delete == (args.version is not None):
        print("orchestra models alias: give VERSION, or --delete to remove the alias", file=err)
        return EXIT_USAGE
    with _registry(args) as registry:
        if args.delete:
            result: Any = registry.delete_alias(args.name, args.alias)
        else:
            result = registry.set_alias(args.name, args.alias, args.version)
    if args.json:
        return _print_json(result, out)
    if args.delete:
        print(result, file=out)
    else:
        previous = result.get("previous")
        moved = f"moved from version {previous}" if previous is not None else "set"
        print(f"{args.name}@{args.alias} -> version {result['version']} ({moved})", file=out)
    return EXIT_OK


def cmd_models_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _registry(args) as registry:
        moves = registry.history(args.name, args.alias)
    if args.json:
        return _print_json(moves, out)
    rows = [("WHEN", "ACTION", "FROM", "TO", "ROLE")]
    for move in moves:
        rows.append(
            (
                _short_time(move.get("at")),
                str(move.get("action")),
                str(move.get("fromVersion") or "-"),
                str(move.get("toVersion") or "-"),
                str(move.get("role")),
            )
        )
    _table(rows, out)
    return EXIT_OK


def cmd_models_archive(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _registry(args) as registry:
        if args.restore:
            version = registry.restore(args.name, args.version)
        else:
            version = registry.archive(args.name, args.version)
    if args.json:
        return _print_json(version, out)
    print(f"{version['model']} version {version['version']} is {version['status']}", file=out)
    return EXIT_OK


def cmd_models_delete(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _registry(args) as registry:
        result = registry.delete_version(args.name, args.version)
    print(result, file=out)
    return EXIT_OK


def read_rows(source: str) -> Any:
    """Records from a JSON file (or ``-``: standard input) or a CSV file with a header (numbers as numbers,
    empty cells as null)."""
    if source == "-":
        return json.load(sys.stdin)
    path = Path(source)
    if path.suffix.lower() != ".csv":
        return json.loads(path.read_text(encoding="utf-8"))
    with path.open(newline="", encoding="utf-8") as handle:
        return [{key: _cell(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def cmd_models_predict(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    rows = read_rows(args.rows)
    probabilities = False if args.no_probabilities else None
    with _registry(args) as registry:
        result = registry.predict(args.name, rows, version=args.version, probabilities=probabilities)
    if args.json:
        return _print_json(result, out)
    print(f"model {result['model']} version {result['version']} ({result['task']}, {result['rows']} rows)", file=err)
    table = [("ROW", "PREDICTION", "PROBABILITY")]
    scores = result.get("probabilities") or [None] * len(result["predictions"])
    for index, (prediction, score) in enumerate(zip(result["predictions"], scores, strict=True)):
        table.append((str(index), str(prediction), f"{max(score):.4f}" if score else "-"))
    _table(table, out)
    return EXIT_OK


# ----- entry point ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``orchestra`` command; returns the exit status."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.handler
    try:
        return handler(args, out, err)
    except OrchestraError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
