"""MLflow model registry adapter: ``ports.ModelRegistry`` on MLflow 3.

The only module that imports mlflow, and only inside methods (``ctl --help`` stays fast).
Works against a tracking server (``http://...``) or an embedded store (``sqlite:///...``,
the default under CONTROLPLANE_HOME). Every failure becomes one line: NotFoundError,
InputError, or ExternalError ("cannot reach MLflow at ...").
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from controlplane.errors import ExternalError, InputError, NotFoundError, TemporaryError
from controlplane.ports import ModelVersion, NewVersion
from controlplane.refs import check_name

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Fail fast on an unreachable server, no telemetry, no progress bars. Users can still override.
_MLFLOW_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
_ARTIFACT_DIR = "model"  # registered files live under this folder of the run's artifacts
_PAGE = 1000


class MlflowRegistry:
    """``tracking_uri``/``registry_uri``: a server (``http://host:port``) or a database
    (``sqlite:///...``). ``artifact_root``: where artifacts go when there is no server.
    ``cache_dir``: local copies made by ``fetch`` (``cache_dir/NAME/N/``)."""

    def __init__(self, tracking_uri: str, registry_uri: str | None, artifact_root: Path, cache_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_root = Path(artifact_root)
        self.cache_dir = Path(cache_dir)
        self._client_obj: MlflowClient | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> MlflowRegistry:
        """Build from ``controlplane.settings.Settings``."""
        return cls(settings.tracking_uri, settings.registry_uri, settings.artifact_root, settings.models_cache)

    # ---- plumbing ----------------------------------------------------------------------------

    @property
    def _client(self) -> MlflowClient:
        if self._client_obj is None:
            for key, value in _MLFLOW_ENV.items():
                os.environ.setdefault(key, value)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from mlflow import MlflowClient

            for name in ("mlflow", "alembic", "databricks", "urllib3.connectionpool"):
                logging.getLogger(name).setLevel(logging.ERROR)
            for uri in {self.tracking_uri, self.registry_uri}:
                _ensure_sqlite_parent(uri)
            self._client_obj = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client_obj

    @property
    def _local_artifacts(self) -> bool:
        """No server: artifacts are written straight under ``artifact_root``."""
        return urlsplit(self.tracking_uri).scheme not in {"http", "https", "databricks", "databricks-uc"}

    @contextlib.contextmanager
    def _calls(self, doing: str) -> Iterator[None]:
        """Quiet MLflow, and turn whatever it raises into one line."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except (InputError, ExternalError):
            raise
        except Exception as exc:
            raise _translate(exc, doing, _redact(self.tracking_uri)) from None

    # ---- ports.ModelRegistry ---------------------------------------------------------------

    def register(self, new: NewVersion) -> ModelVersion:
        name = check_name(new.name)
        files = _check_files(new.files)
        created_model, run_id, version = False, None, None
        with self._calls(f"registering {name}"):
            client = self._client
            try:
                exp_id = self._experiment(name)
                created_model = self._ensure_model(name)
                run = client.create_run(exp_id, run_name=f"register-{name}", tags={"model_name": name})
                run_id = run.info.run_id
                with tempfile.TemporaryDirectory(prefix="cp-register-") as tmp:
                    staged = _stage(files, Path(tmp) / _ARTIFACT_DIR)
                    client.log_artifacts(run_id, str(staged), _ARTIFACT_DIR)
                self._log_batch(run_id, params=new.params, metrics={}, tags=new.tags)
                mv = client.create_model_version(
                    name,
                    source=f"{run.info.artifact_uri}/{_ARTIFACT_DIR}",
                    run_id=run_id,
                    tags={k: str(v) for k, v in new.tags.items()},
                    description=new.description or None,
                    await_creation_for=0,
                )
                version = int(mv.version)
                client.set_tag(run_id, "model_version", str(version))
                client.set_terminated(run_id, "FINISHED")
                return _to_version(mv)
            except BaseException:
                self._undo(name, created_model, run_id, version)
                raise

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._calls(f"reading {name}:v{version}"):
            try:
                return _to_version(self._client.get_model_version(name, str(version)))
            except Exception as exc:
                if _code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
            versions = self.list_versions(name)  # NotFoundError if the model itself is unknown
            latest = f"latest is v{versions[-1].version}" if versions else "it has no versions"
            raise NotFoundError(f"model version {name}:v{version} not found ({latest})")

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        with self._calls(f"reading {name}@{alias}"):
            try:
                return _to_version(self._client.get_model_version_by_alias(name, alias))
            except Exception as exc:
                if _code(exc) == "RESOURCE_DOES_NOT_EXIST" and "alias" not in str(exc).lower():
                    raise NotFoundError(f"model {name!r} not found in the registry") from None
                if _code(exc) in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} and "not found" in str(exc):
                    self._require_model(name)
                    return None
                raise

    def set_alias(self, name: str, alias: str, version: int) -> None:
        if _RESERVED_ALIAS.match(alias):
            raise InputError(
                f"alias {alias!r} is reserved by MLflow ('latest' and vN); choose another, e.g. production"
            )
        self.get_version(name, version)
        with self._calls(f"setting {name}@{alias}"):
            self._client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove the alias; a no-op when it is not set."""
        if self.get_alias(name, alias) is None:
            return
        with self._calls(f"deleting {name}@{alias}"):
            self._client.delete_registered_model_alias(name, alias)

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self.get_version(name, version)
        with self._calls(f"tagging {name}:v{version}"):
            for key, value in tags.items():
                self._client.set_model_version_tag(name, str(version), key, str(value))

    def list_models(self) -> list[str]:
        with self._calls("listing models"):
            names: list[str] = []
            token = None
            while True:
                page = self._client.search_registered_models(max_results=_PAGE, page_token=token)
                names += [m.name for m in page]
                token = page.token
                if not token:
                    return sorted(names)

    def list_versions(self, name: str) -> list[ModelVersion]:
        check_name(name)
        with self._calls(f"listing versions of {name}"):
            found = []
            token = None
            while True:
                page = self._client.search_model_versions(f"name='{name}'", max_results=_PAGE, page_token=token)
                found += [_to_version(mv) for mv in page]
                token = page.token
                if not token:
                    break
            if not found:
                self._require_model(name)
            # search_model_versions leaves aliases out: take them from the registered model.
            holders: dict[int, list[str]] = {}
            for alias, version in (self._client.get_registered_model(name).aliases or {}).items():
                holders.setdefault(int(version), []).append(alias)
            found = [replace(v, aliases=tuple(sorted(holders.get(v.version, ())))) for v in found]
            return sorted(found, key=lambda v: v.version)

    def fetch(self, name: str, version: int) -> Path:
        """``cache_dir/NAME/N/`` holding the version's files. Versions are immutable, so a
        directory already in the cache is returned without asking the registry."""
        check_name(name)
        target = self.cache_dir / name / str(int(version))
        if target.is_dir():
            return target
        source = self._source(name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            with self._calls(f"downloading {name}:v{version}"):
                from mlflow.artifacts import download_artifacts

                got = Path(download_artifacts(artifact_uri=source, dst_path=str(tmp), tracking_uri=self.tracking_uri))
            with contextlib.suppress(OSError):  # lost a race with another fetch: theirs is complete too
                os.rename(got, target)
            if not target.is_dir():
                raise ExternalError(f"could not place the download of {name}:v{version} at {target}")
            return target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def log_run(
        self,
        name: str,
        version: int,
        run_name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: Sequence[Path],
        tags: Mapping[str, str] | None = None,
    ) -> str:
        self.get_version(name, version)
        paths = [Path(p) for p in artifacts]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise InputError(f"artifact not found: {missing[0]}")
        with self._calls(f"logging run {run_name!r} for {name}:v{version}"):
            client = self._client
            run_tags = {**(tags or {}), "model_name": name, "model_version": str(version)}
            run = client.create_run(self._experiment(name), run_name=run_name, tags=run_tags)
            try:
                self._log_batch(run.info.run_id, params=params, metrics=metrics, tags={})
                for path in paths:
                    if path.is_dir():
                        client.log_artifacts(run.info.run_id, str(path), path.name)
                    else:
                        client.log_artifact(run.info.run_id, str(path))
                client.set_terminated(run.info.run_id, "FINISHED")
            except BaseException:
                self._undo(name, False, run.info.run_id, None)
                raise
            return str(run.info.run_id)

    # ---- helpers -----------------------------------------------------------------------------

    def _experiment(self, name: str) -> str:
        client = self._client
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            return str(exp.experiment_id)
        location = (self.artifact_root / name).resolve().as_uri() if self._local_artifacts else None
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except Exception as exc:
            if _code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
            return str(client.get_experiment_by_name(name).experiment_id)  # type: ignore[union-attr]

    def _ensure_model(self, name: str) -> bool:
        """Create the registered model if needed; True when this call created it."""
        try:
            self._client.create_registered_model(name)
            return True
        except Exception as exc:
            if _code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
            return False

    def _require_model(self, name: str) -> None:
        try:
            self._client.get_registered_model(name)
        except Exception as exc:
            if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(f"model {name!r} not found in the registry") from None
            raise

    def _source(self, name: str, version: int) -> str:
        with self._calls(f"reading {name}:v{version}"):
            try:
                return str(self._client.get_model_version_download_uri(name, str(version)))
            except Exception as exc:
                if _code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
        self.get_version(name, version)  # raises the one-line NotFoundError
        raise NotFoundError(f"model version {name}:v{version} not found")

    def _log_batch(
        self, run_id: str, params: Mapping[str, Any], metrics: Mapping[str, float], tags: Mapping[str, str]
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now_ms = int(time.time() * 1000)
        self._client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def _undo(self, name: str, created_model: bool, run_id: str | None, version: int | None) -> None:
        """Best-effort removal of what a failed call created: the version, the run, the model."""
        client = self._client
        with contextlib.suppress(Exception):
            if version is not None:
                client.delete_model_version(name, str(version))
        if run_id is not None:
            with contextlib.suppress(Exception):
                artifact_uri = client.get_run(run_id).info.artifact_uri
                if artifact_uri.startswith("file:"):
                    shutil.rmtree(Path(urlsplit(artifact_uri).path).parent, ignore_errors=True)
            with contextlib.suppress(Exception):
                client.delete_run(run_id)
        if created_model:
            with contextlib.suppress(Exception):
                if not client.search_model_versions(f"name='{name}'", max_results=1):
                    client.delete_registered_model(name)


# ---- module helpers ----------------------------------------------------------------------------


def _check_files(files: Mapping[str, Path]) -> dict[str, Path]:
    if not files:
        raise InputError("nothing to register: no files given")
    checked: dict[str, Path] = {}
    for arcname, path in files.items():
        rel = PurePosixPath(arcname)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise InputError(f"invalid artifact name {arcname!r}: use a relative name such as model.onnx")
        if not Path(path).is_file():
            raise InputError(f"file not found: {path}")
        checked[str(rel)] = Path(path)
    return checked


def _stage(files: Mapping[str, Path], folder: Path) -> Path:
    """Lay the files out under their artifact names (hard links where possible)."""
    for arcname, path in files.items():
        dest = folder / arcname
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
    return folder


def _to_version(mv: Any) -> ModelVersion:
    created = getattr(mv, "creation_timestamp", None)
    return ModelVersion(
        name=mv.name,
        version=int(mv.version),
        source_uri=f"models:/{mv.name}/{mv.version}",
        tags=dict(mv.tags or {}),
        aliases=tuple(sorted(getattr(mv, "aliases", None) or ())),
        run_id=mv.run_id or None,
        created_at=created / 1000.0 if created else None,
    )


def _ensure_sqlite_parent(uri: str) -> None:
    """MLflow creates the SQLite file but not its folder."""
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^\"')]+)")
_UNREACHABLE = ("Max retries exceeded", "Failed to establish a new connection", "timed out", "Connection aborted")


def _translate(exc: BaseException, doing: str, where: str) -> Exception:
    text = " ".join(str(exc).split())
    if any(m in text for m in _UNREACHABLE) or isinstance(exc, ConnectionError):
        errno = _ERRNO.search(text)
        reason = errno.group(1).strip().lower() if errno else ("timed out" if "timed out" in text else "unreachable")
        return ExternalError(f"cannot reach MLflow at {where}: {reason}")
    code = _code(exc)
    short = text[:300]
    if code == "RESOURCE_DOES_NOT_EXIST":
        return NotFoundError(f"{doing}: {short}")
    if code in {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "BAD_REQUEST"}:
        return InputError(f"{doing}: {short}")
    if code in {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"} or "database is locked" in text:
        return TemporaryError(f"MLflow busy while {doing}: {short}", delay=2.0)
    return ExternalError(f"MLflow failed while {doing} at {where}: {short or type(exc).__name__}")


def _redact(uri: str) -> str:
    """Hide a password in a URI (``scheme://user:***@host``)."""
    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    return uri
