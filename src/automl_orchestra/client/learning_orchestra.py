"""Learning Orchestra-compatible classes (``DatasetCsv``, ``TrainScikitLearn``, ``Observer``, ...).

The class and method names and the parameter names follow the Learning Orchestra Python client, so its
pipelines (the seed's Appendix A and B) run unchanged against AutoML Orchestra::

    dataset_csv = DatasetCsv("http://127.0.0.1:8080")
    dataset_csv.insert_dataset_async(dataset_name="train", url="https://.../train.csv")
    dataset_csv.wait(dataset_name="train", timeout=1)

All classes are thin layers over :class:`~automl_orchestra.client.http.Client`: one shared base
(:class:`_StepClient`) implements create / update / search / delete / wait for a ``service/tool`` pair and
each class only adds the Learning Orchestra spellings of those operations. The classes that only name a
``service/tool`` pair (``ModelScikitLearn``, ``TrainH2O``, ``AutoMLFlaml``, ...) are generated from one table,
``_TOOL_CLASSES`` at the end of this module.

Semantics kept from Learning Orchestra, and where they differ from the modern :class:`Client`:

* ``*_async`` returns the step URL at once; ``*_sync`` creates the step, waits until it is settled and
  returns its metadata. ``pretty_response=True`` returns an indented JSON string instead.
* ``wait(name, timeout)`` blocks until the step is settled, as Learning Orchestra's did: ``timeout`` is the
  length of each long poll (Learning Orchestra's per-wait bound), not a deadline. Pass ``max_wait=`` for a
  deadline (:class:`WaitTimeoutError`). A failed or cancelled step raises :class:`StepFailedError`.
* ``delete_*`` of a step that does not exist returns the server's message instead of raising (a pipeline
  may start by deleting what an earlier run left); every other error raises its typed exception.
* ``TransformDataType.update_dataset_type_*`` changes the types of an existing dataset in place (``PATCH``
  of that step with ``{"types": ...}``); ``create_dataset_type_*`` creates a new ``transform/dataType`` step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from automl_orchestra.client.errors import NotFoundError
from automl_orchestra.client.http import DEFAULT_API_PREFIX, Client, ClientOwner, FileSource, Metadata, name_from_url

# Python keyword arguments whose request field is not their camelCase spelling.
_RENAMED_FIELDS = {"class_name": "class", "method_name": "method"}


def wire_name(key: str, aliases: Mapping[str, str] | None = None) -> str:
    """The request field of a Python keyword: ``class_parameters`` -> ``classParameters``."""
    if aliases and key in aliases:
        return aliases[key]
    if key in _RENAMED_FIELDS:
        return _RENAMED_FIELDS[key]
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _present(value: Any, pretty_response: bool) -> Any:
    """Learning Orchestra's ``pretty_response``: an indented JSON string instead of the value."""
    if pretty_response and not isinstance(value, str | bytes):
        return json.dumps(value, indent=4, sort_keys=True, ensure_ascii=False, default=str)
    return value


def _one_name(name: str | None, **aliases: str | None) -> str:
    """The step name given positionally or under one of Learning Orchestra's keyword spellings."""
    given = [value for value in (name, *aliases.values()) if value is not None]
    if len(given) != 1:
        spellings = ", ".join(["name", *aliases])
        raise TypeError(f"give the step name exactly once (as one of: {spellings})")
    return given[0]


class _Connected(ClientOwner):
    """Owns (or borrows) the :class:`Client` of a Learning Orchestra-style object."""

    def __init__(
        self,
        cluster_ip: str | None = None,
        token: str | None = None,
        *,
        client: Client | None = None,
        timeout: float = 30.0,
        api_prefix: str = DEFAULT_API_PREFIX,
    ) -> None:
        super().__init__(client, lambda: Client(cluster_ip, token=token, timeout=timeout, api_prefix=api_prefix))

    def wait(
        self,
        name: str | None = None,
        timeout: float | None = None,
        *,
        max_wait: float | None = None,
        raise_on_failure: bool = True,
        dataset_name: str | None = None,
        projection_name: str | None = None,
        histogram_name: str | None = None,
        builder_name: str | None = None,
    ) -> Metadata:
        """Block until the step is settled and return its metadata (Learning Orchestra's ``wait``).

        The name may be given positionally or as ``dataset_name=`` / ``projection_name=`` / ... (the
        spellings of the Learning Orchestra classes). ``timeout`` is the length in seconds of each long
        poll; ``max_wait`` bounds the whole wait (:class:`WaitTimeoutError`). Failed or cancelled steps
        raise :class:`StepFailedError` unless ``raise_on_failure`` is false.
        """
        step = _one_name(
            name,
            dataset_name=dataset_name,
            projection_name=projection_name,
            histogram_name=histogram_name,
            builder_name=builder_name,
        )
        poll = 60.0 if timeout is None else max(1.0, float(timeout))
        return self.client.wait(step, timeout=max_wait, poll=poll, raise_on_failure=raise_on_failure)


class _StepClient(_Connected):
    """Generic operations on the steps of one ``service/tool``; subclasses add Learning Orchestra names."""

    service: ClassVar[str] = ""
    tool: ClassVar[str] = ""
    #: Python keyword -> request field, where it differs from the generic camelCase rule.
    field_aliases: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        cluster_ip: str | None = None,
        token: str | None = None,
        *,
        client: Client | None = None,
        timeout: float = 30.0,
        api_prefix: str = DEFAULT_API_PREFIX,
    ) -> None:
        super().__init__(cluster_ip, token, client=client, timeout=timeout, api_prefix=api_prefix)
        self._last_name: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.url!r})"

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.tool}"

    def body(self, **fields: Any) -> dict[str, Any]:
        """A request body from Python keywords (``None`` values left out, names made the server's)."""
        return {wire_name(key, self.field_aliases): value for key, value in fields.items() if value is not None}

    # ----- create / update -----------------------------------------------------------------------------

    def _create(self, body: Mapping[str, Any], sync: bool, pretty_response: bool, max_wait: float | None) -> Any:
        url = self.client.submit(self.service, self.tool, body)
        self._last_name = name_from_url(url)
        if not sync:
            return _present(url, pretty_response)
        return _present(self.wait(self._last_name, max_wait=max_wait), pretty_response)

    def create_async(self, body: Mapping[str, Any], pretty_response: bool = False) -> Any:
        """Create a step of this kind from a request body (server field names); returns its URL."""
        return self._create(body, False, pretty_response, None)

    def create_sync(
        self, body: Mapping[str, Any], pretty_response: bool = False, *, max_wait: float | None = None
    ) -> Any:
        """Create a step of this kind, wait until it is settled and return its metadata."""
        return self._create(body, True, pretty_response, max_wait)

    def _update(
        self,
        name: str,
        changes: Mapping[str, Any],
        sync: bool,
        pretty_response: bool,
        cascade: bool,
        max_wait: float | None,
    ) -> Any:
        url = self.client.update(name, changes, cascade=cascade)
        if not sync:
            return _present(url, pretty_response)
        return _present(self.wait(name, max_wait=max_wait), pretty_response)

    def update_async(
        self,
        name: str,
        changes: Mapping[str, Any] | None = None,
        *,
        cascade: bool = False,
        pretty_response: bool = False,
        **fields: Any,
    ) -> Any:
        """Re-execute a step with changed parameters (``PATCH``); returns its URL at once.

        ``changes`` uses the server's field names, ``fields`` the Python keywords of the create method
        (``class_parameters=``, ``parameters=``, ...). Dependents become stale, or re-run with ``cascade``.
        """
        body = dict(changes or {})
        body.update(self.body(**fields))
        return self._update(name, body, False, pretty_response, cascade, None)

    def update_sync(
        self,
        name: str,
        changes: Mapping[str, Any] | None = None,
        *,
        cascade: bool = False,
        pretty_response: bool = False,
        max_wait: float | None = None,
        **fields: Any,
    ) -> Any:
        """Like :meth:`update_async`, then wait until the step is settled and return its metadata."""
        body = dict(changes or {})
        body.update(self.body(**fields))
        return self._update(name, body, True, pretty_response, cascade, max_wait)

    # ----- read / delete -------------------------------------------------------------------------------

    def search_all(self, pretty_response: bool = False, *, skip: int = 0, limit: int = 100) -> Any:
        """Metadata of every step of this kind."""
        return _present(self.client.list_tool(self.service, self.tool, skip=skip, limit=limit), pretty_response)

    def search_content(
        self,
        name: str,
        query: Mapping[str, Any] | None = None,
        limit: int = 10,
        skip: int = 0,
        pretty_response: bool = False,
    ) -> Any:
        """A content page: ``[metadata, row, ...]`` (rows of a table, or the value of another output).

        A step of another kind (e.g. the dataset whose types ``TransformDataType`` changed) is read at its
        own URL.
        """
        try:
            page = self.client.content(self.service, self.tool, name, skip=skip, limit=limit, query=query)
        except NotFoundError:
            metadata = self.client.get(name)  # raises NotFoundError when there is no such step at all
            if (metadata.get("service"), metadata.get("tool")) == (self.service, self.tool):
                raise
            page = self.client.content(
                str(metadata["service"]), str(metadata["tool"]), name, skip=skip, limit=limit, query=query
            )
        return _present(page, pretty_response)

    def search_metadata(self, name: str, pretty_response: bool = False) -> Any:
        """The metadata document of one step."""
        return _present(self.client.get(name), pretty_response)

    def delete(
        self, name: str, pretty_response: bool = False, *, cascade: bool = False, missing_ok: bool = True
    ) -> Any:
        """Delete a step of this kind; returns the server's message.

        A missing step is not an error unless ``missing_ok`` is false; a step others depend on is refused
        (:class:`ConflictError`) unless ``cascade`` is true.
        """
        try:
            result = self.client.call(
                "DELETE", f"{self.path}/{name}", params={"cascade": "true" if cascade else "false"}
            )
        except NotFoundError as exc:
            if not missing_ok:
                raise
            result = exc.message
        return _present(result, pretty_response)

    def cancel(self, name: str) -> Any:
        """Cancel a pending or running step."""
        return self.client.cancel(name)

    def search_runs(self, name: str, pretty_response: bool = False) -> Any:
        """Every run record of a step."""
        return _present(self.client.runs(name), pretty_response)

    def search_logs(self, name: str, run: int | None = None, pretty_response: bool = False) -> Any:
        """``{"run", "stdout", "stderr"}`` of a run (default: the current run)."""
        return _present(self.client.logs(name, run), pretty_response)

    def search_artifacts(self, name: str, pretty_response: bool = False) -> Any:
        """The files a step produced: ``[{"name", "size"}, ...]``."""
        return _present(self.client.artifacts(name), pretty_response)


# ----- datasets -------------------------------------------------------------------------------------


class _Dataset(_StepClient):
    service = "dataset"

    def _dataset_body(
        self,
        dataset_name: str,
        url: str | None,
        path: str | None,
        description: str | None,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        return self.body(name=dataset_name, url=url, path=path, description=description, **options)

    def insert_dataset_sync(
        self,
        dataset_name: str,
        url: str | None = None,
        pretty_response: bool = False,
        *,
        path: str | None = None,
        description: str | None = None,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Ingest a dataset from ``url`` (or a server ``path``), wait, and return its metadata.

        ``options``: ``separator``, ``header``, ``columns``, ``types``, ``encoding``, ``cache``, ``limits``.
        """
        body = self._dataset_body(dataset_name, url, path, description, options)
        return self._create(body, True, pretty_response, max_wait)

    def insert_dataset_async(
        self,
        dataset_name: str,
        url: str | None = None,
        pretty_response: bool = False,
        *,
        path: str | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Any:
        """Start ingesting a dataset from ``url`` (or a server ``path``); returns its URL."""
        body = self._dataset_body(dataset_name, url, path, description, options)
        return self._create(body, False, pretty_response, None)

    def _upload(self, dataset_name: str, file: FileSource, form: Mapping[str, Any]) -> str:
        fields = {wire_name(key): value for key, value in form.items()}
        url = self.client.upload_url(self.service, self.tool, dataset_name, file, **fields)
        self._last_name = name_from_url(url)
        return url

    def upload_dataset_sync(
        self,
        dataset_name: str,
        file: FileSource,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **form: Any,
    ) -> Any:
        """Upload a local file (path or binary file object) as a dataset, wait, and return its metadata.

        ``form``: ``separator``, ``header`` (CSV options).
        """
        self._upload(dataset_name, file, form)
        return _present(self.wait(dataset_name, max_wait=max_wait), pretty_response)

    def upload_dataset_async(
        self, dataset_name: str, file: FileSource, pretty_response: bool = False, **form: Any
    ) -> Any:
        """Upload a local file as a dataset; returns its URL without waiting for the ingestion."""
        return _present(self._upload(dataset_name, file, form), pretty_response)

    search_all_datasets = _StepClient.search_all

    def search_dataset_content(
        self,
        dataset_name: str,
        query: Mapping[str, Any] | None = None,
        limit: int = 10,
        skip: int = 0,
        pretty_response: bool = False,
    ) -> Any:
        return self.search_content(dataset_name, query, limit, skip, pretty_response)

    def search_dataset_metadata(self, dataset_name: str, pretty_response: bool = False) -> Any:
        return self.search_metadata(dataset_name, pretty_response)

    def delete_dataset(self, dataset_name: str, pretty_response: bool = False, *, cascade: bool = False) -> Any:
        return self.delete(dataset_name, pretty_response, cascade=cascade)

    update_dataset_sync = _StepClient.update_sync
    update_dataset_async = _StepClient.update_async


# ----- transform / explore (built-in tools) ---------------------------------------------------------


class TransformDataType(_StepClient):
    """``transform/dataType``: field types (``number``, ``string``, ``integer``, ``boolean``)."""

    service = "transform"
    tool = "dataType"

    def update_dataset_type_sync(
        self,
        dataset_name: str,
        types: Mapping[str, str],
        pretty_response: bool = False,
        *,
        cascade: bool = False,
        max_wait: float | None = None,
    ) -> Any:
        """Change the field types of an existing dataset in place (re-ingestion), wait, return its metadata.

        Types forced earlier on other fields are kept, as when Learning Orchestra changed the stored data.
        """
        changes = {"types": self._merged_types(dataset_name, types)}
        return self._update(dataset_name, changes, True, pretty_response, cascade, max_wait)

    def update_dataset_type_async(
        self,
        dataset_name: str,
        types: Mapping[str, str],
        pretty_response: bool = False,
        *,
        cascade: bool = False,
    ) -> Any:
        """Start changing the field types of an existing dataset in place; returns its URL."""
        changes = {"types": self._merged_types(dataset_name, types)}
        return self._update(dataset_name, changes, False, pretty_response, cascade, None)

    def _merged_types(self, name: str, types: Mapping[str, str]) -> dict[str, str]:
        forced = self.client.get(name).get("parameters", {}).get("types")
        return {**(forced if isinstance(forced, dict) else {}), **types}

    def create_dataset_type_sync(
        self,
        name: str,
        parent_name: str,
        types: Mapping[str, str],
        description: str | None = None,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Create a new dataset ``name``: ``parent_name`` with the given types; wait; return its metadata."""
        body = self.body(name=name, parent_name=parent_name, types=dict(types), description=description, **options)
        return self._create(body, True, pretty_response, max_wait)

    def create_dataset_type_async(
        self,
        name: str,
        parent_name: str,
        types: Mapping[str, str],
        description: str | None = None,
        pretty_response: bool = False,
        **options: Any,
    ) -> Any:
        body = self.body(name=name, parent_name=parent_name, types=dict(types), description=description, **options)
        return self._create(body, False, pretty_response, None)

    search_all_datatype = _StepClient.search_all

    search_datatype_content = _StepClient.search_content
    delete_datatype = _StepClient.delete
    update_datatype_sync = _StepClient.update_sync
    update_datatype_async = _StepClient.update_async


class TransformProjection(_StepClient):
    """``transform/projection``: a new dataset with the listed fields of its parent."""

    service = "transform"
    tool = "projection"

    def remove_dataset_attributes_sync(
        self,
        dataset_name: str,
        projection_name: str,
        fields: list[str],
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Project ``dataset_name`` onto ``fields`` as the new dataset ``projection_name``; wait."""
        return self.create_projection_sync(
            projection_name, dataset_name, fields, None, pretty_response, max_wait=max_wait, **options
        )

    def remove_dataset_attributes_async(
        self,
        dataset_name: str,
        projection_name: str,
        fields: list[str],
        pretty_response: bool = False,
        **options: Any,
    ) -> Any:
        return self.create_projection_async(projection_name, dataset_name, fields, None, pretty_response, **options)

    def create_projection_sync(
        self,
        name: str,
        parent_name: str,
        fields: list[str],
        description: str | None = None,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        body = self.body(name=name, parent_name=parent_name, fields=list(fields), description=description, **options)
        return self._create(body, True, pretty_response, max_wait)

    def create_projection_async(
        self,
        name: str,
        parent_name: str,
        fields: list[str],
        description: str | None = None,
        pretty_response: bool = False,
        **options: Any,
    ) -> Any:
        body = self.body(name=name, parent_name=parent_name, fields=list(fields), description=description, **options)
        return self._create(body, False, pretty_response, None)

    search_all_projections = _StepClient.search_all

    def search_projection_content(
        self,
        projection_name: str,
        query: Mapping[str, Any] | None = None,
        limit: int = 10,
        skip: int = 0,
        pretty_response: bool = False,
    ) -> Any:
        return self.search_content(projection_name, query, limit, skip, pretty_response)

    def delete_projection(self, projection_name: str, pretty_response: bool = False, *, cascade: bool = False) -> Any:
        return self.delete(projection_name, pretty_response, cascade=cascade)

    update_projection_sync = _StepClient.update_sync
    update_projection_async = _StepClient.update_async


class ExploreHistogram(_StepClient):
    """``explore/histogram``: counts for categorical fields, bins for numeric ones."""

    service = "explore"
    tool = "histogram"

    def run_histogram_sync(
        self,
        dataset_name: str,
        histogram_name: str,
        fields: list[str],
        pretty_response: bool = False,
        *,
        bins: int | None = None,
        description: str | None = None,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Histogram of ``fields`` of ``dataset_name`` as the step ``histogram_name``; wait; metadata."""
        body = self.body(
            name=histogram_name,
            parent_name=dataset_name,
            fields=list(fields),
            bins=bins,
            description=description,
            **options,
        )
        return self._create(body, True, pretty_response, max_wait)

    def run_histogram_async(
        self,
        dataset_name: str,
        histogram_name: str,
        fields: list[str],
        pretty_response: bool = False,
        *,
        bins: int | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Any:
        body = self.body(
            name=histogram_name,
            parent_name=dataset_name,
            fields=list(fields),
            bins=bins,
            description=description,
            **options,
        )
        return self._create(body, False, pretty_response, None)

    search_all_histograms = _StepClient.search_all

    def search_histogram_content(
        self,
        histogram_name: str,
        query: Mapping[str, Any] | None = None,
        limit: int = 10,
        skip: int = 0,
        pretty_response: bool = False,
    ) -> Any:
        return self.search_content(histogram_name, query, limit, skip, pretty_response)

    def delete_histogram(self, histogram_name: str, pretty_response: bool = False, *, cascade: bool = False) -> Any:
        return self.delete(histogram_name, pretty_response, cascade=cascade)

    update_histogram_sync = _StepClient.update_sync
    update_histogram_async = _StepClient.update_async


# ----- model and the method services (train, tune, predict, evaluate, transform, explore) ------------


class _Model(_StepClient):
    service = "model"

    def _model_body(
        self,
        name: str,
        module_path: str,
        class_name: str,
        class_parameters: Mapping[str, Any] | None,
        description: str | None,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        return self.body(
            name=name,
            module_path=module_path,
            class_name=class_name,
            class_parameters=dict(class_parameters or {}),
            description=description,
            **options,
        )

    def create_model_sync(
        self,
        name: str,
        module_path: str,
        class_name: str,
        class_parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Instantiate ``module_path.class_name(**class_parameters)`` as the step ``name``; wait; metadata."""
        body = self._model_body(name, module_path, class_name, class_parameters, description, options)
        return self._create(body, True, pretty_response, max_wait)

    def create_model_async(
        self,
        name: str,
        module_path: str,
        class_name: str,
        class_parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        **options: Any,
    ) -> Any:
        body = self._model_body(name, module_path, class_name, class_parameters, description, options)
        return self._create(body, False, pretty_response, None)

    search_all_models = _StepClient.search_all

    search_model = _StepClient.search_content
    search_model_content = _StepClient.search_content
    delete_model = _StepClient.delete
    update_model_sync = _StepClient.update_sync
    update_model_async = _StepClient.update_async


class _MethodStep(_StepClient):
    """Steps that call ``method_name(**parameters)`` on the object stored by ``parent_name``.

    Train, tune, predict, evaluate and the tool transforms / explores share this one implementation;
    each class only names it the Learning Orchestra way (``create_training_sync``, ...).
    """

    field_aliases: ClassVar[dict[str, str]] = {"parameters": "methodParameters"}

    def _method_step(
        self,
        sync: bool,
        name: str,
        model_name: str | None,
        parent_name: str | None,
        method_name: str,
        parameters: Mapping[str, Any] | None,
        description: str | None,
        pretty_response: bool,
        max_wait: float | None,
        options: Mapping[str, Any],
    ) -> Any:
        body = self.body(
            name=name,
            model_name=model_name or None,
            parent_name=parent_name,
            method_name=method_name,
            parameters=dict(parameters or {}),
            description=description,
            **options,
        )
        return self._create(body, sync, pretty_response, max_wait)

    def create_method_sync(
        self,
        name: str,
        model_name: str | None,
        parent_name: str | None,
        method_name: str,
        parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Call ``method_name(**parameters)`` on the object of step ``parent_name``; wait; return the metadata.

        ``model_name`` is informational (the original model step). ``options``: ``cache``, ``limits``, and
        per service ``metrics`` (evaluate: scorer names) or ``module_path`` / ``class_name`` (explore: call a
        library function or class method instead of a step's object).
        """
        return self._method_step(
            True,
            name,
            model_name,
            parent_name,
            method_name,
            parameters,
            description,
            pretty_response,
            max_wait,
            options,
        )

    def create_method_async(
        self,
        name: str,
        model_name: str | None,
        parent_name: str | None,
        method_name: str,
        parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        **options: Any,
    ) -> Any:
        """Like :meth:`create_method_sync` without waiting; returns the step URL."""
        return self._method_step(
            False, name, model_name, parent_name, method_name, parameters, description, pretty_response, None, options
        )


class _Transform(_MethodStep):
    service = "transform"

    create_transform_sync = _MethodStep.create_method_sync
    create_transform_async = _MethodStep.create_method_async
    search_all_transformations = _StepClient.search_all
    search_transform_content = _StepClient.search_content
    delete_transform = _StepClient.delete
    update_transform_sync = _StepClient.update_sync
    update_transform_async = _StepClient.update_async


class _Explore(_MethodStep):
    service = "explore"

    create_explore_sync = _MethodStep.create_method_sync
    create_explore_async = _MethodStep.create_method_async
    search_all_explores = _StepClient.search_all
    search_explore_metadata = _StepClient.search_metadata
    search_explore_content = _StepClient.search_content
    delete_explore = _StepClient.delete
    update_explore_sync = _StepClient.update_sync
    update_explore_async = _StepClient.update_async

    def search_explore_image(self, name: str) -> bytes:
        """The first PNG the explore step produced."""
        for artifact in self.client.artifacts(name):
            if str(artifact.get("name", "")).lower().endswith(".png"):
                return self.client.read_artifact(name, str(artifact["name"]))
        raise NotFoundError(f"explore step {name!r} produced no image", status=404, code="not_found")


class _Train(_MethodStep):
    service = "train"

    create_training_sync = _MethodStep.create_method_sync
    create_training_async = _MethodStep.create_method_async
    search_all_trainings = _StepClient.search_all
    search_training_content = _StepClient.search_content
    delete_training = _StepClient.delete
    update_training_sync = _StepClient.update_sync
    update_training_async = _StepClient.update_async


class _Tune(_MethodStep):
    service = "tune"

    create_tune_sync = _MethodStep.create_method_sync
    create_tune_async = _MethodStep.create_method_async
    search_all_tunes = _StepClient.search_all
    search_tune_content = _StepClient.search_content
    delete_tune = _StepClient.delete
    update_tune_sync = _StepClient.update_sync
    update_tune_async = _StepClient.update_async


class _Predict(_MethodStep):
    service = "predict"

    create_prediction_sync = _MethodStep.create_method_sync
    create_prediction_async = _MethodStep.create_method_async
    search_all_predictions = _StepClient.search_all
    search_prediction_content = _StepClient.search_content
    delete_prediction = _StepClient.delete
    update_prediction_sync = _StepClient.update_sync
    update_prediction_async = _StepClient.update_async


class _Evaluate(_MethodStep):
    service = "evaluate"

    create_evaluate_sync = _MethodStep.create_method_sync
    create_evaluate_async = _MethodStep.create_method_async
    search_all_evaluates = _StepClient.search_all
    search_evaluate_content = _StepClient.search_content
    delete_evaluate = _StepClient.delete
    update_evaluate_sync = _StepClient.update_sync
    update_evaluate_async = _StepClient.update_async


class ModelPycaret(_Model):
    """``model/pycaret``: a PyCaret experiment; ``class_name`` is ClassificationExperiment (default),
    RegressionExperiment, ClusteringExperiment or AnomalyExperiment."""

    tool = "pycaret"

    def create_experiment_sync(
        self, name: str, class_name: str = "ClassificationExperiment", pretty_response: bool = False, **options: Any
    ) -> Any:
        return self.create_model_sync(name, "pycaret", class_name, pretty_response=pretty_response, **options)

    def create_experiment_async(
        self, name: str, class_name: str = "ClassificationExperiment", pretty_response: bool = False, **options: Any
    ) -> Any:
        return self.create_model_async(name, "pycaret", class_name, pretty_response=pretty_response, **options)


# ----- code steps -----------------------------------------------------------------------------------


class _CodeStep(_StepClient):
    """User code with resolved ``parameters`` as globals; the value of ``response`` is stored."""

    tool = "python"

    def _run_code(
        self,
        sync: bool,
        name: str,
        parameters: Mapping[str, Any] | None,
        code: str | None,
        description: str | None,
        pretty_response: bool,
        max_wait: float | None,
        options: Mapping[str, Any],
    ) -> Any:
        body = self.body(name=name, code=code, parameters=dict(parameters or {}), description=description, **options)
        return self._create(body, sync, pretty_response, max_wait)

    def run_code_sync(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        code: str | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **options: Any,
    ) -> Any:
        """Run ``code`` with ``parameters`` (``"$step"`` references resolved) as globals; wait; metadata.

        ``options``: ``code_url`` (instead of ``code``), ``cache``, ``limits``.
        """
        return self._run_code(True, name, parameters, code, description, pretty_response, max_wait, options)

    def run_code_async(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        code: str | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        **options: Any,
    ) -> Any:
        """Like :meth:`run_code_sync` without waiting; returns the step URL."""
        return self._run_code(False, name, parameters, code, description, pretty_response, None, options)

    search_all_executions = _StepClient.search_all
    search_execution_content = _StepClient.search_content
    delete_execution = _StepClient.delete


class FunctionPython(_CodeStep):
    """``function/python``: run Python code as a step."""

    service = "function"

    run_function_sync = _CodeStep.run_code_sync
    run_function_async = _CodeStep.run_code_async
    update_function_sync = _StepClient.update_sync
    update_function_async = _StepClient.update_async


class BuilderPython(_CodeStep):
    """``builder/python``: a whole pipeline's code as one step; files it writes become its artifacts."""

    service = "builder"

    run_python_sync = _CodeStep.run_code_sync
    run_python_async = _CodeStep.run_code_async
    search_all_builders = _StepClient.search_all
    update_builder_sync = _StepClient.update_sync
    update_builder_async = _StepClient.update_async

    def search_builder(self, builder_name: str, pretty_response: bool = False) -> Any:
        return self.search_metadata(builder_name, pretty_response)

    def delete_builder(self, builder_name: str, pretty_response: bool = False, *, cascade: bool = False) -> Any:
        return self.delete(builder_name, pretty_response, cascade=cascade)

    def search_builder_register_predictions(
        self,
        file_name: str | None = None,
        name: str | None = None,
        *,
        builder_name: str | None = None,
        query: Mapping[str, Any] | None = None,
        limit: int = 10,
        skip: int = 0,
        pretty_response: bool = False,
    ) -> Any:
        """A file the builder code wrote (``file_name``, as text), or the builder's content page.

        With ``file_name``, the file is read from the step ``name`` / ``builder_name``, else from the last
        step this object ran, else from the most recent builder step that has such a file.
        """
        step = name or builder_name
        if file_name is None:
            if step is None:
                raise TypeError("give file_name, or the builder step name")
            return self.search_content(step, query, limit, skip, pretty_response)
        return self.search_report(file_name, step)

    def search_report(self, file_name: str, name: str | None = None) -> str:
        """The text of a file the builder code wrote (see :meth:`search_builder_register_predictions`)."""
        if name or self._last_name:
            step = str(name or self._last_name)
            artifact = _artifact_named(self.client.artifacts(step), file_name)
            if artifact is None:
                raise NotFoundError(f"builder step {step!r} wrote no file named {file_name!r}", 404, "not_found")
        else:
            step, artifact = self._find_step_with_artifact(file_name)
        return self.client.read_artifact(step, artifact).decode("utf-8", errors="replace")

    def _find_step_with_artifact(self, file_name: str) -> tuple[str, str]:
        steps = sorted(
            self.client.list_tool(self.service, self.tool),
            key=lambda item: str(item.get("updatedAt") or ""),
            reverse=True,
        )
        for metadata in steps[:20]:
            artifact = _artifact_named(self.client.artifacts(str(metadata["name"])), file_name)
            if artifact is not None:
                return str(metadata["name"]), artifact
        raise NotFoundError(f"no builder step wrote a file named {file_name!r}", status=404, code="not_found")


def _artifact_named(artifacts: list[dict[str, Any]], file_name: str) -> str | None:
    """The artifact path of a file the code wrote: ``file_name`` itself, else ``files/<file_name>``, else the
    one whose base name it is."""
    names = [str(artifact.get("name", "")) for artifact in artifacts]
    for candidate in (file_name, f"files/{file_name}"):
        if candidate in names:
            return candidate
    matches = [name for name in names if name.rsplit("/", 1)[-1] == file_name]
    return matches[0] if len(matches) == 1 else None


# ----- AutoML ---------------------------------------------------------------------------------------


class BuilderPycaret(BuilderPython):
    """``builder/pycaret``: a whole PyCaret pipeline (the seed's Appendix A) in the PyCaret environment,
    with ``pycaret``, ``pd`` and ``np`` pre-imported; files it writes become artifacts (tables as Parquet)."""

    tool = "pycaret"

    run_pycaret_sync = _CodeStep.run_code_sync
    run_pycaret_async = _CodeStep.run_code_async


class BuilderAutokeras(BuilderPython):
    """``builder/autokeras``: a whole AutoKeras pipeline as one step (code roles only), with ``autokeras``
    (also as ``ak``), ``keras``, ``pd`` and ``np`` pre-imported; files it writes become artifacts."""

    tool = "autokeras"

    run_autokeras_sync = _CodeStep.run_code_sync
    run_autokeras_async = _CodeStep.run_code_async


class _AutoML(_StepClient):
    service = "automl"

    def _automl_body(
        self,
        name: str,
        parent_name: str,
        target: str,
        task: str,
        time_budget: float | None,
        metric: str | None,
        seed: int | None,
        options: Mapping[str, Any] | None,
        description: str | None,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        return self.body(
            name=name,
            parent_name=parent_name,
            target=target,
            task=task,
            time_budget=time_budget,
            metric=metric,
            seed=seed,
            options=dict(options) if options is not None else None,
            description=description,
            **extra,
        )

    def run_automl_sync(
        self,
        name: str,
        parent_name: str,
        target: str,
        task: str = "classification",
        time_budget: float | None = None,
        metric: str | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        *,
        max_wait: float | None = None,
        **extra: Any,
    ) -> Any:
        """Search the best model for ``target`` of dataset ``parent_name`` within ``time_budget`` seconds.

        ``extra``: ``auto_exclude``, ``exclude_columns``, ``keep_columns``, ``cache``, ``limits``.
        Waits and returns the metadata (metrics of the best model); see :meth:`search_leaderboard`.
        """
        body = self._automl_body(
            name, parent_name, target, task, time_budget, metric, seed, options, description, extra
        )
        return self._create(body, True, pretty_response, max_wait)

    def run_automl_async(
        self,
        name: str,
        parent_name: str,
        target: str,
        task: str = "classification",
        time_budget: float | None = None,
        metric: str | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
        description: str | None = None,
        pretty_response: bool = False,
        **extra: Any,
    ) -> Any:
        body = self._automl_body(
            name, parent_name, target, task, time_budget, metric, seed, options, description, extra
        )
        return self._create(body, False, pretty_response, None)

    search_all_automl = _StepClient.search_all

    def leaderboard_name(self, name: str) -> str:
        """The name of the leaderboard dataset an automl step derived."""
        metadata = self.client.get(name)
        found = _leaderboard_reference(metadata)
        if found:
            return found
        try:
            lineage = self.client.lineage(name)
        except NotFoundError:
            lineage = {}
        children = {edge.get("child") for edge in lineage.get("edges", []) if edge.get("parent") == name}
        for node in lineage.get("nodes", []):
            if node.get("tool") == "leaderboard" and (node.get("name") in children or name in node.get("parents", [])):
                return str(node["name"])
        for candidate in (f"{name}_leaderboard", f"{name}-leaderboard", f"{name}Leaderboard"):
            if self.client.exists(candidate):
                return candidate
        raise NotFoundError(f"automl step {name!r} has no leaderboard", status=404, code="not_found")

    def search_leaderboard(
        self,
        name: str,
        query: Mapping[str, Any] | None = None,
        limit: int = 10,
        skip: int = 0,
        pretty_response: bool = False,
    ) -> Any:
        """The leaderboard (one row per tried configuration) of an automl step: ``[metadata, row, ...]``."""
        board = self.leaderboard_name(name)
        metadata = self.client.get(board)
        page = self.client.content(
            str(metadata["service"]), str(metadata["tool"]), board, skip=skip, limit=limit, query=query
        )
        return _present(page, pretty_response)

    search_automl_content = _StepClient.search_content
    delete_automl = _StepClient.delete
    update_automl_sync = _StepClient.update_sync
    update_automl_async = _StepClient.update_async


def _leaderboard_reference(metadata: Mapping[str, Any]) -> str | None:
    """A leaderboard name or URL recorded in an automl step's metadata, if the server records one."""
    candidates: list[Any] = [metadata.get("leaderboard"), metadata.get("leaderboardName")]
    for key in ("derived", "outputs"):
        derived = metadata.get(key)
        if isinstance(derived, Mapping):
            candidates.append(derived.get("leaderboard"))
        elif isinstance(derived, list):
            candidates.extend(item for item in derived if "leaderboard" in json.dumps(item).lower())
    for candidate in candidates:
        if isinstance(candidate, Mapping):
            candidate = candidate.get("name") or candidate.get("url")
        if isinstance(candidate, str) and candidate:
            return name_from_url(candidate)
    return None


class AutoMLCompare(_AutoML):
    """``automl/compare``: one dataset through several automl engines under one budget each, the same
    holdout rows and metric; one leaderboard and the best model overall (usable by any ``predict``).

    ``options`` is keyed by engine, e.g. ``{"flaml": {"estimator_list": ["lgbm"]}}``.
    """

    tool = "compare"

    def run_compare_sync(
        self,
        name: str,
        parent_name: str,
        target: str,
        engines: list[str] | None = None,
        time_budget: float | None = None,
        metric: str | None = None,
        holdout: float | None = None,
        *,
        max_wait: float | None = None,
        **extra: Any,
    ) -> Any:
        """Run the comparison, wait for it and return its metadata (``bestEngine``, ``failedEngines``...)."""
        return self.run_automl_sync(
            name, parent_name, target, time_budget=time_budget, metric=metric, engines=engines,
            holdout=holdout, max_wait=max_wait, **extra,
        )  # fmt: skip

    def run_compare_async(
        self,
        name: str,
        parent_name: str,
        target: str,
        engines: list[str] | None = None,
        time_budget: float | None = None,
        metric: str | None = None,
        holdout: float | None = None,
        **extra: Any,
    ) -> Any:
        return self.run_automl_async(
            name, parent_name, target, time_budget=time_budget, metric=metric, engines=engines,
            holdout=holdout, **extra,
        )  # fmt: skip

    def comparison(self, name: str) -> list[dict[str, Any]]:
        """The comparison's leaderboard rows (engine, status, model, scores, times, reason), best first."""
        rows = self.search_leaderboard(name, limit=100)
        return [dict(row) for row in rows[1:]]


# ----- observer -------------------------------------------------------------------------------------


class Observer(_Connected):
    """Learning Orchestra's ``Observer``, over the REST observe endpoints (no database credentials)."""

    def observe(self, name: str, timeout: float = 30.0) -> Metadata:
        """One long poll: the metadata once the step is settled, or after ``timeout`` seconds."""
        return self.client.observe(name, timeout)

    def observe_pipe(self, name: str, timeout: float | None = None) -> Iterator[Metadata]:
        """Iterate the step's metadata on every change until it settles (``next()`` for the next change).

        ``timeout`` bounds the silence between two changes, in seconds.
        """
        return self.client.status_events(name, timeout=timeout)

    def events(self, name: str, timeout: float | None = None) -> Iterator[Metadata]:
        """The raw Server-Sent Events: ``{"event", "data", "id"}``."""
        return self.client.events(name, timeout=timeout)


# ----- the tool classes -----------------------------------------------------------------------------

# One row per class that only names a ``service/tool`` pair: (Learning Orchestra's class name, the base that
# gives its service and methods, the tool, what the tool does). Classes with methods of their own are
# written out above; a tool added to the server needs one row here. An empty description leaves the base's.
_TOOL_CLASSES: tuple[tuple[str, type[_StepClient], str, str], ...] = (
    ("DatasetCsv", _Dataset, "csv", "CSV files stored as typed tables."),
    ("DatasetGeneric", _Dataset, "generic", "any file, stored as is (referenced as a file path)."),
    ("DatasetTimeSeries", _Dataset, "timeseries", "a long CSV (id, time, channels) or a sktime/UCR ``.ts`` file."),
    ("ModelScikitLearn", _Model, "scikitlearn", ""),
    ("TransformScikitLearn", _Transform, "scikitlearn", ""),
    ("ExploreScikitLearn", _Explore, "scikitlearn", ""),
    ("TrainScikitLearn", _Train, "scikitlearn", ""),
    ("TuneScikitLearn", _Tune, "scikitlearn", ""),
    ("PredictScikitLearn", _Predict, "scikitlearn", ""),
    ("EvaluateScikitLearn", _Evaluate, "scikitlearn", ""),
    ("ModelFlaml", _Model, "flaml", ""),
    ("TrainFlaml", _Train, "flaml", ""),
    ("TuneFlaml", _Tune, "flaml", ""),
    ("PredictFlaml", _Predict, "flaml", ""),
    ("EvaluateFlaml", _Evaluate, "flaml", ""),
    ("AutoMLFlaml", _AutoML, "flaml", "declarative AutoML with FLAML (leaderboard + best model + metrics)."),
    ("ModelTpot", _Model, "tpot", ""),
    ("TrainTpot", _Train, "tpot", ""),
    ("PredictTpot", _Predict, "tpot", ""),
    ("EvaluateTpot", _Evaluate, "tpot", ""),
    ("AutoMLTpot", _AutoML, "tpot", "baselines + TPOT search, best by CV (leaderboard, model, pipeline.py)."),
    (
        "TransformPycaret",
        _Transform,
        "pycaret",
        "``setup`` (default) on an experiment step, with ``data='$dataset'``.",
    ),
    (
        "TrainPycaret",
        _Train,
        "pycaret",
        "``compare_models`` (default) or ``create_model`` on a set-up experiment; the score grid becomes the "
        "dataset step ``{name}_grid``.",
    ),
    (
        "TunePycaret",
        _Tune,
        "pycaret",
        "``tune_model`` (default), ``ensemble_model``, ``blend_models``, ``stack_models``.",
    ),
    (
        "PredictPycaret",
        _Predict,
        "pycaret",
        "``predict_model`` (or ``assign_model``) on a set-up experiment, or ``predict`` on a model step such as "
        "an ``automl/pycaret`` result.",
    ),
    (
        "EvaluatePycaret",
        _Evaluate,
        "pycaret",
        "``finalize_model`` (default) or ``predict_model`` for holdout metrics.",
    ),
    (
        "ExplorePycaret",
        _Explore,
        "pycaret",
        "``plot_model`` (default) or ``interpret_model``; the PNGs are the step's artifacts.",
    ),
    (
        "AutoMLPycaret",
        _AutoML,
        "pycaret",
        "compare_models, tune the winner, finalize (leaderboard, holdout metrics).",
    ),
    (
        "TransformTsfresh",
        _Transform,
        "tsfresh",
        "``method`` is extract_features (default), select_features or impute.",
    ),
    (
        "ModelAutoKeras",
        _Model,
        "autokeras",
        "an AutoKeras task (``ImageClassifier``, ``StructuredDataRegressor``, ``AutoModel`` with "
        "``inputs``/``blocks``/``outputs`` by name...) stored as a recipe; ``class_parameters`` are AutoKeras' "
        "plus ``trialTimeout`` (seconds one trial may run).",
    ),
    (
        "TrainAutoKeras",
        _Train,
        "autokeras",
        "``fit`` is the architecture search, each trial in a child process stopped at its time limit or before "
        "the step's memory limit; the trial table is ``{name}_leaderboard``.",
    ),
    (
        "PredictAutoKeras",
        _Predict,
        "autokeras",
        "``predict`` of the best model found (class labels for classifiers).",
    ),
    (
        "EvaluateAutoKeras",
        _Evaluate,
        "autokeras",
        "``evaluate`` of the best model found (loss and metrics by name).",
    ),
    (
        "TuneAutoKeras",
        _Tune,
        "autokeras",
        "the same architecture and hyperparameter search as ``TrainAutoKeras`` (AutoKeras tunes while it trains; "
        "the seed names the class but has no separate AutoKeras tuning).",
    ),
    (
        "ExploreAutoKeras",
        _Explore,
        "autokeras",
        "``summary`` (trial table, best architecture) or ``export`` (``model.keras`` and ``model.onnx`` artifacts).",
    ),
    (
        "AutoMLAutoKeras",
        _AutoML,
        "autokeras",
        "a neural architecture search suited to the input (a CNN for images, no upscaling or downloads); "
        "``extra``: ``max_trials``, ``epochs``, ``trial_timeout``, ``input_key``, ``image_shape``, "
        "``validation_split``.",
    ),
    (
        "ModelKeras",
        _Model,
        "keras",
        'a hand-built Keras model, layers as the seed\'s ``"#keras.layers...."`` expressions (code: needs a '
        "role that may run code).",
    ),
    (
        "TrainKeras",
        _Train,
        "keras",
        "``compile`` then ``fit`` on a Keras model step (stored in Keras' native format).",
    ),
    ("PredictKeras", _Predict, "keras", ""),
    ("EvaluateKeras", _Evaluate, "keras", "``evaluate`` (metrics by name)."),
    (
        "ModelH2O",
        _Model,
        "h2o",
        "an H2O estimator or H2OAutoML (instantiated by the train step, in its JVM).",
    ),
    ("TrainH2O", _Train, "h2o", ""),
    ("PredictH2O", _Predict, "h2o", ""),
    ("EvaluateH2O", _Evaluate, "h2o", ""),
    (
        "AutoMLH2O",
        _AutoML,
        "h2o",
        "H2O AutoML in a JVM of the step (leaderboard, leader as H2O binary + MOJO, CV metrics).",
    ),
    (
        "ModelAutoGluon",
        _Model,
        "autogluon",
        "a TabularPredictor (``label`` in class parameters; the path is the train step's).",
    ),
    ("TrainAutoGluon", _Train, "autogluon", ""),
    ("PredictAutoGluon", _Predict, "autogluon", ""),
    ("EvaluateAutoGluon", _Evaluate, "autogluon", ""),
    (
        "AutoMLAutoGluon",
        _AutoML,
        "autogluon",
        "AutoGluon TabularPredictor (leaderboard, predictor under the step's output).",
    ),
)

# The seed spells these classes more than one way (Appendix B: ``TrainAutokeras``; section 3.1.8:
# ``ModelAutokeras``, ``TrainingPycaret``...): alias -> class name.
_TOOL_CLASS_ALIASES: dict[str, str] = {
    "ModelAutokeras": "ModelAutoKeras",
    "TrainAutokeras": "TrainAutoKeras",
    "TrainingAutokeras": "TrainAutoKeras",
    "TrainingPycaret": "TrainPycaret",
    "TuneAutokeras": "TuneAutoKeras",
    "PredictAutokeras": "PredictAutoKeras",
    "EvaluateAutokeras": "EvaluateAutoKeras",
    "BuilderAutoKeras": "BuilderAutokeras",
}


def _tool_class(name: str, base: type[_StepClient], tool: str, doc: str) -> type[_StepClient]:
    """The class ``name``: ``base`` (the service's methods) for steps of ``base.service/tool``."""
    # __module__ and __qualname__ as if written here, so that pickle, repr and Sphinx find the class; without
    # a doc of its own, help() shows the base's description, as it did for the hand-written classes.
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"``{base.service}/{tool}``: {doc}" if doc else None,
        "tool": tool,
    }
    return type(name, (base,), namespace)


globals().update({row[0]: _tool_class(*row) for row in _TOOL_CLASSES})
globals().update({alias: globals()[name] for alias, name in _TOOL_CLASS_ALIASES.items()})

# The hand-written classes plus the table's, so that a new row is exported without a second list to keep.
__all__ = sorted(
    [
        "AutoMLCompare",
        "BuilderAutokeras",
        "BuilderPycaret",
        "BuilderPython",
        "ExploreHistogram",
        "FunctionPython",
        "ModelPycaret",
        "Observer",
        "TransformDataType",
        "TransformProjection",
        *(row[0] for row in _TOOL_CLASSES),
        *_TOOL_CLASS_ALIASES,
    ]
)
