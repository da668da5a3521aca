"""The Kubernetes client: the only module that imports ``kubernetes`` (lazily).

Every request goes through ``KubeClient.request``: one seam that counts requests,
translates every API failure into ``controlplane.errors`` types, and retries through the
project's one retry loop (``controlplane.retry``: TemporaryError only, honouring Retry-After).
Objects are plain dicts.

Error mapping:
    404 → NotFoundError · 409 → ConflictError · 400/422 → InputError (server message)
    401/403 → PermanentError("forbidden: ...") · 429/5xx/connection → TemporaryError
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from controlplane.errors import (
    ConflictError,
    ControlPlaneError,
    InputError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)
from controlplane.retry import with_retry

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"

RequestHook = Callable[[str, str, int, float], None]  # verb, resource, status code (0: no answer), seconds


def resource_path(
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/...`` for the core group (``group == ""``), ``/apis/GROUP/VERSION/...`` otherwise."""
    path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


def translate(status: int, body: bytes | str | None, headers: Mapping[str, str] | None, what: str) -> Exception:
    """The one place an HTTP failure becomes a control-plane error."""
    message = _server_message(body) or f"HTTP {status}"
    if status == 404:
        return NotFoundError(f"{what}: not found ({message})")
    if status == 409:
        return ConflictError(f"{what}: conflict: {message}")
    if status in (400, 422):
        return InputError(message)
    if status in (401, 403):
        return PermanentError(f"forbidden: {message}")
    if status == 429 or status >= 500:
        return TemporaryError(f"{what}: HTTP {status}: {message}", delay=_retry_after(headers))
    return PermanentError(f"{what}: HTTP {status}: {message}")


def _server_message(body: bytes | str | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    return str(data.get("message") or data.get("reason") or "") if isinstance(data, dict) else text[:500]


def _retry_after(headers: Mapping[str, str] | None, default: float = 1.0) -> float:
    if not headers:
        return default
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


class KubeClient:
    """A small, thread-safe client over the Kubernetes REST API returning plain dicts.

    ``kubeconfig``/``context`` select a kubeconfig; with neither, ``$KUBECONFIG`` or
    ``~/.kube/config`` is tried, then the in-cluster service-account configuration.
    """

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        pool_size: int = 32,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.requests: Counter[str] = Counter()  # by verb: get, list, watch, create, patch, update, delete
        self.hooks: list[RequestHook] = []
        self._lock = threading.Lock()
        self._api = _make_api_client(kubeconfig, context, pool_size)

    # ---- the seam ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        verb: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API call (retried on TemporaryError); the decoded JSON answer."""
        verb = verb or _verb(method, path)

        def once() -> dict[str, Any]:
            raw = self._send(method, path, body, query, content_type, verb, timeout or self.timeout, stream=False)
            return json.loads(raw) if raw else {}

        return with_retry(once, attempts=self.attempts)

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, Any] | None,
        content_type: str,
        verb: str,
        timeout: float | tuple[float, float],
        stream: bool,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        full = path + ("?" + urlencode({k: _q(v) for k, v in query.items() if v is not None}) if query else "")
        headers = {"Accept": JSON, "Content-Type": content_type}
        started, status = time.monotonic(), 0
        with self._lock:
            self.requests[verb] += 1
        try:
            m, url, hdrs, payload, post = self._api.param_serialize(
                method=method, resource_path=full, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            resp = self._api.call_api(m, url, hdrs, payload, post, _request_timeout=timeout)
            status = resp.status
            if not 200 <= status <= 299:
                data = resp.read()
                raise translate(status, data, dict(resp.getheaders() or {}), f"{method} {path}")
            if stream:
                return resp.response
            return resp.read()
        except ControlPlaneError:
            raise
        except ApiException as exc:  # status 0: TLS and request-building failures
            if exc.status:
                raise translate(exc.status, exc.body, dict(exc.headers or {}), f"{method} {path}") from exc
            raise TemporaryError(f"{method} {path}: {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            raise TemporaryError(f"{method} {path}: connection failed: {exc}") from exc
        finally:
            elapsed = time.monotonic() - started
            for hook in self.hooks:
                hook(verb, path, status, elapsed)

    # ---- generic objects (custom resources, and anything by group/version/plural) -------

    def get_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", resource_path(group, version, plural, namespace, name))

    def list_custom(
        self, group: str, version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return list(self.list_objects(group, version, plural, namespace, label_selector).get("items") or [])

    def list_objects(
        self, group: str, version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> dict[str, Any]:
        """The whole list answer (``items`` and ``metadata.resourceVersion`` for a watch)."""
        query = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", resource_path(group, version, plural, namespace), query=query, verb="list")

    def create_custom(
        self, group: str, version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        return self.request("POST", resource_path(group, version, plural, namespace), body=body)

    def patch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): maps merge, lists are replaced, ``None`` removes a key."""
        path = resource_path(group, version, plural, namespace, name, subresource)
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def json_patch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        operations: list[dict[str, Any]],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON patch (RFC 6902): exact paths, so list items can be changed one field at a time.
        A failed ``test`` operation (the object changed under us) is a TemporaryError: read again."""
        path = resource_path(group, version, plural, namespace, name, subresource)
        try:
            return self.request("PATCH", path, body=operations, content_type=JSON_PATCH)
        except InputError as exc:
            if "test" in str(exc).lower():
                raise TemporaryError(f"PATCH {path}: the object changed while patching ({exc})", delay=0.1) from exc
            raise

    def replace_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """PUT; with ``metadata.resourceVersion`` set, a stale body raises ConflictError."""
        path = resource_path(group, version, plural, namespace, name, subresource)
        return self.request("PUT", path, body=body)

    def delete_custom(self, group: str, version: str, plural: str, namespace: str | None, name: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        self.request("DELETE", resource_path(group, version, plural, namespace, name), body=body)

    def watch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type": ..., "object": ...}``) until the server closes the stream.
        A type ``ERROR`` event (e.g. 410 Gone) is yielded as is: relist and watch again."""
        from kubernetes.watch.watch import iter_resp_lines
        from urllib3.exceptions import HTTPError

        query = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds}
        if resource_version:
            query["resourceVersion"] = resource_version
        path = resource_path(group, version, plural, namespace)

        def open_stream() -> Any:
            return self._send("GET", path, None, query, JSON, "watch", (self.timeout, timeout_seconds + 15), True)

        resp = with_retry(open_stream, attempts=self.attempts)
        try:
            for line in iter_resp_lines(resp):
                yield json.loads(line)
        except (HTTPError, OSError) as exc:
            raise TemporaryError(f"watch {path}: stream broken: {exc}") from exc
        finally:
            resp.release_conn()

    # ---- typed helpers ------------------------------------------------------------------

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get_custom("apps", "v1", "deployments", namespace, name)

    def create_deployment(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create_custom("apps", "v1", "deployments", namespace, body)

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.patch_custom("apps", "v1", "deployments", namespace, name, patch)

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get_custom("", "v1", "services", namespace, name)

    def create_service(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create_custom("", "v1", "services", namespace, body)

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get_custom("coordination.k8s.io", "v1", "leases", namespace, name)

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create_custom("coordination.k8s.io", "v1", "leases", namespace, body)

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Optimistic: ``body.metadata.resourceVersion`` must be current, else ConflictError."""
        return self.replace_custom("coordination.k8s.io", "v1", "leases", namespace, name, body)

    def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create_custom("", "v1", "events", namespace, body)

    def list_events(self, namespace: str, field_selector: str | None = None) -> list[dict[str, Any]]:
        query = {"fieldSelector": field_selector} if field_selector else None
        return list(self.request("GET", f"/api/v1/namespaces/{namespace}/events", query=query).get("items") or [])

    def close(self) -> None:
        self._api.close()


def _verb(method: str, path: str) -> str:
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")


def _q(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _make_api_client(kubeconfig: str | None, context: str | None, pool_size: int) -> Any:
    import os

    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        has_file = os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config"))
        if kubeconfig or context or has_file:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        raise InputError(f"no usable Kubernetes configuration: {exc}") from exc
    configuration.retries = False  # the one retry loop is ours
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
