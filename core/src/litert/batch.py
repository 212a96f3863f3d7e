"""`litert batch SPEC.toml`: many conversions from one spec, locally or on a Ray cluster.

A spec lists sources and the settings to convert each with; it expands to one job per
combination. Every job is a real `litert convert` in its own process (a crash or a
refusal stays in that job; its peak memory is that process's own), so a batch is exactly
the conversions a user would have typed, and resuming one is free: a job whose bundle
is already in the store with the same inputs, settings and versions is answered by the
conversion cache in seconds.

Locally, jobs run side by side as long as their pre-flight memory estimates fit in the
memory available when the batch starts, and never more of them than cores. On a cluster,
each job is a Ray task declaring its estimated memory and one CPU, so Ray places it
where it fits; the table comes back to the submitting terminal.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from litert.console import Interrupted
from litert.errors import LitertError
from litert.lifetime import die_with_parent
from litert.types import QUANTIZATION_RECIPES

_JOB_KEYS = {"source", "quantize", "prefill_lengths", "kv_cache_max_len", "name", "revision", "family", "verify"}
_DEFAULT_KEYS = (_JOB_KEYS - {"source"}) | {"output"}
DEFAULT_NAME = "{name}-{quantize}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One conversion of a batch: the arguments of one `litert convert`."""

    name: str
    source: str
    quantize: str
    prefill_lengths: tuple[int, ...] | None
    kv_cache_max_len: int | None
    output: Path | None
    revision: str | None = None
    family: str | None = None
    verify: bool = True

    def argv(self) -> list[str]:
        args = ["convert", self.source, "--quantize", self.quantize, "--name", self.name, "--json"]
        if self.prefill_lengths:
            args += ["--prefill-lengths", ",".join(map(str, self.prefill_lengths))]
        if self.kv_cache_max_len:
            args += ["--kv-cache-max-len", str(self.kv_cache_max_len)]
        if self.output is not None:
            args += ["--output", str(self.output / f"{self.name.replace('/', '--')}.litertlm")]
        if self.revision:
            args += ["--revision", self.revision]
        if self.family:
            args += ["--family", self.family]
        if not self.verify:
            args.append("--no-verify")
        return args


@dataclasses.dataclass
class JobResult:
    """What became of a job: the batch's table has one row per result."""

    job: Job
    status: str
    """converted, in store (the conversion cache answered), parity failed, failed, interrupted, not run."""
    bundle: str | None = None
    size: int | None = None
    seconds: float | None = None
    peak_bytes: int | None = None
    parity: str | None = None
    """pass / FAIL with the figures, or None when not verified."""
    error: str | None = None
    node: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("converted", "in store")

    def as_json(self) -> dict[str, Any]:
        job = dataclasses.asdict(self.job)
        job["output"] = str(self.job.output) if self.job.output else None
        row = dataclasses.asdict(self)
        row["job"] = job
        return row


# --- the spec ----------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise LitertError(f"{where}: unknown key {unknown[0]!r}", f"keys allowed there: {', '.join(sorted(allowed))}")


def _prefill_sets(value: Any, where: str) -> list[tuple[int, ...] | None]:
    """prefill_lengths: one list of lengths, or a list of such lists (one job each)."""
    if value is None:
        return [None]
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        sets = value
    elif isinstance(value, list):
        sets = [value]
    else:
        sets = None
    if not sets or not all(
        s and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in s) for s in sets
    ):
        raise LitertError(f"{where}: prefill_lengths must be a list of positive integers (or a list of such lists)",
                          "e.g. prefill_lengths = [8, 64]")  # fmt: skip
    return [tuple(s) for s in sets]


def load_spec(path: Path, output: Path | None = None) -> list[Job]:
    """The jobs a spec expands to, checked; relative sources are relative to the spec's directory."""
    import tomllib

    from litert.checkpoint import default_name, is_hub_id

    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LitertError(f"there is no batch spec {path}", "check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LitertError(f"cannot read the batch spec {path}: {exc}", "check the file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LitertError(f"{path} is not valid TOML: {exc}", "fix the spec") from exc
    _check(spec, {"defaults", "jobs"}, str(path))
    defaults = spec.get("defaults", {})
    entries = spec.get("jobs")
    if not isinstance(defaults, dict):
        raise LitertError(f"{path}: [defaults] must be a table", "see docs/batch.md")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise LitertError(f"{path} lists no [[jobs]]", "add at least one [[jobs]] with a source")
    _check(defaults, _DEFAULT_KEYS, f"{path} [defaults]")
    if output is None and defaults.get("output"):
        output = (path.parent / str(defaults["output"])).resolve()
    jobs: list[Job] = []
    for i, entry in enumerate(entries, start=1):
        where = f"{path} job {i}"
        _check(entry, _JOB_KEYS, where)
        settings = {**defaults, **entry}
        source = settings.get("source")
        if not isinstance(source, str) or not source:
            raise LitertError(f"{where}: source is required", 'e.g. source = "./Qwen3-tiny" or "Qwen/Qwen3-0.6B"')
        local = (path.parent / source).expanduser()
        if not is_hub_id(source) or local.exists():
            source = str(local.resolve())
        recipes = _list(settings.get("quantize", "dynamic_int8"))
        for recipe in recipes:
            if recipe not in QUANTIZATION_RECIPES:
                raise LitertError(f"{where}: unknown quantization recipe {recipe!r}",
                                  f"use one of: {', '.join(QUANTIZATION_RECIPES)}")  # fmt: skip
        kvs = _list(settings.get("kv_cache_max_len"))
        if not all(k is None or (isinstance(k, int) and not isinstance(k, bool) and k > 0) for k in kvs):
            raise LitertError(f"{where}: kv_cache_max_len must be a positive integer (or a list)", "e.g. 1280")
        prefills = _prefill_sets(settings.get("prefill_lengths"), where)
        template = settings.get("name") or (
            DEFAULT_NAME
            + ("-kv{kv_cache_max_len}" if len(kvs) > 1 else "")
            + ("-p{prefill}" if len(prefills) > 1 else "")
        )
        base = default_name(entry["source"]) if is_hub_id(entry["source"]) else Path(source).name
        for recipe, kv, prefill in itertools.product(recipes, kvs, prefills):
            fields = {"name": base, "quantize": recipe, "kv_cache_max_len": kv or "default",
                      "prefill": "_".join(map(str, prefill)) if prefill else "default"}  # fmt: skip
            try:
                name = str(template).format(**fields)
            except (KeyError, IndexError, ValueError) as exc:
                raise LitertError(f"{where}: the name template {template!r} is not valid ({exc})",
                                  f"use the fields {{{'}, {'.join(fields)}}}") from exc  # fmt: skip
            jobs.append(
                Job(
                    name=name,
                    source=source,
                    quantize=recipe,
                    prefill_lengths=prefill,
                    kv_cache_max_len=kv,
                    output=output,
                    revision=settings.get("revision"),
                    family=settings.get("family"),
                    verify=bool(settings.get("verify", True)),
                )
            )
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.name in seen:
            hint = 'give them a name template, e.g. name = "{name}-{quantize}-kv{kv_cache_max_len}"'
            raise LitertError(f"{path}: two jobs would both be stored as {job.name!r}", hint)
        seen[job.name] = job
    return jobs


# --- one job -----------------------------------------------------------------------------


def estimate_bytes(job: Job) -> int | None:
    """The job's pre-flight memory estimate (None for a Hub source not downloaded yet)."""
    from litert.checkpoint import load_checkpoint
    from litert.memory import estimate_peak_bytes
    from litert.plugins import get_plugins

    path = Path(job.source)
    if not path.is_dir():
        return None
    try:
        ckpt = load_checkpoint(path)
        plugins = get_plugins()
        native = plugins.record(plugins.claim(ckpt, job.family)[0]).native
        return estimate_peak_bytes(ckpt, job.verify, native, job.quantize)
    except LitertError:
        return None  # the job itself will say what is wrong with the checkpoint


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors[-1] if errors else lines[-1] if lines else "failed").removeprefix("error: ")


def _short_parity(summary: str) -> str:
    """'parity: top-1 97.5%, KL 0.0200, ... — pass' -> 'pass: top-1 97.5%, KL 0.0200'."""
    verdict = summary.rsplit("—", 1)[-1].strip() if "—" in summary else "?"
    figures = summary.removeprefix("parity:").split(", max")[0].strip()
    return f"{verdict}: {figures}"


_CHILDREN: set[subprocess.Popen[str]] = set()
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()
"""Set by stop_children: a job process started from now on is stopped at once."""


def stop_children() -> None:
    """Pass Ctrl-C on to the running jobs (they stop and leave nothing half-written)."""
    with _CHILDREN_LOCK:
        _STOPPING.set()
        for child in _CHILDREN:
            if child.returncode is None:
                child.send_signal(signal.SIGINT)


def run_job(job: Job, env: dict[str, str] | None = None, log_dir: Path | None = None) -> JobResult:
    """Run one job as a `litert convert` process; measure its wall time and its own peak memory."""
    import socket

    started = time.monotonic()
    cmd = [sys.executable, "-m", "litert", *job.argv()]
    stderr_path = (log_dir / f"{job.name.replace('/', '--')}.log") if log_dir else None
    # the job's conversion ends with its batch, even one killed outright (it then cleans up as
    # for any SIGTERM)
    ends_with_batch = functools.partial(die_with_parent, signal.SIGTERM, os.getpid(), 143)
    with open(stderr_path or os.devnull, "w+", encoding="utf-8") as err_file, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=err_file, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **(env or {})}, preexec_fn=ends_with_batch if sys.platform == "linux" else None,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
            if _STOPPING.is_set():  # Ctrl-C came while this job was being started
                proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        # wait4 gives this child's own peak RSS (getrusage would give the largest of all children).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)
        err_file.seek(0)
        stderr = err_file.read()
    result = JobResult(job=job, status="failed", seconds=time.monotonic() - started, node=socket.gethostname())
    result.peak_bytes = usage.ru_maxrss * 1024
    try:
        data = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        result.bundle, result.size = data.get("path"), data.get("size")
        summary = data.get("parity_summary")
        if isinstance(summary, str):
            result.parity = _short_parity(summary)
        result.status = "in store" if data.get("from_store") else "converted"
        if data.get("passed") is False:
            result.status = "parity failed"
    if proc.returncode in (-2, 130, -15, 143):
        result.status, result.error = "interrupted", "interrupted"
    elif proc.returncode != 0 and result.status != "parity failed":
        result.status = "failed"
    if result.status not in ("converted", "in store"):
        result.error = result.error or _died_as(proc.returncode, stderr) or _last_error(stderr)
    if proc.returncode != 0:
        _remove_leftovers_of(proc.pid, env)
    return result


def _died_as(code: int, stderr: str) -> str | None:
    """The reason of a conversion that was killed (it printed no error line): the signal and its
    last step, not the last progress line as if it were the reason."""
    if code >= 0 or any(line.startswith("error:") for line in stderr.splitlines()):
        return None
    name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
    steps = [line.strip() for line in stderr.splitlines() if line.strip()]
    during = f" during: {steps[-1][:120]}" if steps else ""
    return f"the conversion was killed by {name}{during} (out of memory or disk space? see its log)"


def _remove_leftovers_of(pid: int, env: dict[str, str] | None) -> None:
    """A conversion that died leaves its temp directory (named by its pid): removed now, not
    at some later conversion."""
    import tempfile

    tmp = Path((env or {}).get("TMPDIR") or os.environ.get("TMPDIR") or tempfile.gettempdir())
    for leftover in tmp.glob(f"litert-convert-{pid}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# --- running a batch ---------------------------------------------------------------------


Report = Callable[[str, Job, JobResult | None], None]
"""Called when a job starts (result None) and when it ends."""


def run_local(jobs: list[Job], workers: int | None, log_dir: Path, report: Report) -> list[JobResult]:
    """Run the jobs in separate processes: as many at once as fit in the available memory, at most `workers`.

    Memory: each job's pre-flight estimate is reserved while it runs; a job starts when the
    reservations fit in what was available when the batch started. A job too big on its own
    runs alone (and its conversion refuses, with its one line, if it cannot fit at all).
    """
    from litert.memory import available_bytes

    _STOPPING.clear()
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, cores))
    budget = available_bytes() or 0
    estimates = {job.name: estimate_bytes(job) for job in jobs}
    pending = list(jobs)
    running: dict[str, int] = {}
    done: queue.Queue[JobResult] = queue.Queue()
    results: dict[str, JobResult] = {}

    def fits(job: Job) -> bool:
        need = estimates[job.name]
        if not running:
            return True
        if need is None or not budget:
            return False  # unknown size: alone
        return sum(running.values()) + need <= budget

    threads: dict[str, threading.Thread] = {}

    def start(job: Job) -> None:
        # The thread first: Ctrl-C may land anywhere in here, and a job counted as running
        # must have a thread that will report it.
        thread = threading.Thread(target=lambda: done.put(run_job(job, log_dir=log_dir)), daemon=True)
        threads[job.name] = thread
        thread.start()
        running[job.name] = estimates[job.name] or budget
        report("start", job, None)

    try:
        while pending or running:
            while pending and len(running) < workers and fits(pending[0]):
                start(pending.pop(0))
            result = done.get()
            running.pop(result.job.name, None)
            results[result.job.name] = result
            report("end", result.job, result)
    except (KeyboardInterrupt, Interrupted):
        stop_children()
        for job in pending:
            results[job.name] = JobResult(job=job, status="not run")
        deadline = time.monotonic() + 60
        started = set(threads)
        while started - set(results) and time.monotonic() < deadline:
            try:
                result = done.get(timeout=1)
            except queue.Empty:
                continue
            result.status = "interrupted" if not result.ok else result.status
            results[result.job.name] = result
        for name in started - set(results):
            job = next(j for j in jobs if j.name == name)
            results[name] = JobResult(job=job, status="interrupted", error="interrupted")
        raise BatchInterrupted([results[j.name] for j in jobs if j.name in results]) from None
    return [results[j.name] for j in jobs]


class BatchInterrupted(Exception):
    """Ctrl-C during a batch: the results so far, for the table."""

    def __init__(self, results: list[JobResult]) -> None:
        super().__init__("interrupted")
        self.results = results


def run_ray(jobs: list[Job], address: str, log_dir: Path, report: Report) -> list[JobResult]:
    """Submit each job as a Ray task declaring its memory estimate and one CPU; collect as they finish.

    `address` "local" starts a Ray instance for this batch (stopped at the end); anything
    else is passed to `ray.init` (e.g. "auto" or "ray://head:10001"). Workers need litert
    and the family plugins installed, and must see the sources and the output directory.
    """
    try:
        import ray
    except ImportError as exc:
        raise LitertError("--ray needs Ray, which is not installed", "pip install 'litert[ray]'") from exc
    import logging

    env = {k: v for k, v in os.environ.items() if k.startswith(("LITERT_", "HF_")) and k != "HF_TOKEN"}
    if address == "local":
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, configure_logging=True)  # fmt: skip
    else:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise LitertError(f"cannot join the Ray cluster at {address}: {exc}", "check --ray ADDRESS") from exc
    try:
        remote = ray.remote(_ray_job)
        pending: dict[Any, Job] = {}
        for job in jobs:
            estimate = estimate_bytes(job)
            options: dict[str, Any] = {"num_cpus": 1, "name": f"litert:{job.name}", "max_retries": 0}
            if estimate:
                options["memory"] = estimate
            pending[remote.options(**options).remote(job, env, str(log_dir))] = job
            report("submitted", job, None)
        results: dict[str, JobResult] = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except Exception as exc:  # noqa: BLE001 — a task that died (node lost, worker killed)
                    result = JobResult(job=job, status="failed", error=f"the Ray task failed: {exc}".splitlines()[0])
                results[job.name] = result
                report("end", job, result)
        except (KeyboardInterrupt, Interrupted):
            for ref in pending:
                ray.cancel(ref, force=True)
            for job in pending.values():
                results[job.name] = JobResult(job=job, status="interrupted", error="interrupted")
            raise BatchInterrupted([results[j.name] for j in jobs if j.name in results]) from None
        return [results[j.name] for j in jobs]
    finally:
        ray.shutdown()


def _ray_job(job: Job, env: dict[str, str], log_dir: str) -> JobResult:
    """The body of a Ray task: the same process a local batch runs, on whichever node Ray chose."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return run_job(job, env=env, log_dir=Path(log_dir))


# --- the table ---------------------------------------------------------------------------


def table(results: list[JobResult]) -> Iterator[str]:
    """The batch's closing table, one row per job."""
    from litert.console import human_size, human_time

    rows = [("JOB", "RECIPE", "STATUS", "SIZE", "TIME", "PEAK", "PARITY")]
    for r in results:
        if r.ok or r.status == "parity failed":
            parity = r.parity or "-"
        else:
            parity = f"({r.error})" if r.error else "-"
        rows.append(
            (
                r.job.name,
                r.job.quantize,
                r.status,
                human_size(r.size) if r.size else "-",
                human_time(r.seconds) if r.seconds is not None else "-",
                human_size(r.peak_bytes) if r.peak_bytes else "-",
                parity,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]


def prepare(spec: Path, output: Path | None) -> tuple[list[Job], Path]:
    """The jobs of `spec` (into `output`, else the store) and this batch's log directory;
    a spec, an output or a store that cannot be used is refused before any job starts."""
    from litert import store

    if output is not None:
        output = output.expanduser().resolve()
        store.ensure_dir(output)
    planned = load_spec(spec, output)
    planned = [job if job.output else dataclasses.replace(job, output=store.home() / "models") for job in planned]
    store.load_index()
    store.check_writable()
    return planned, store.ensure_dir(store.home() / "logs" / time.strftime("batch-%Y%m%d-%H%M%S"))


@dataclasses.dataclass
class Outcome:
    """A finished batch: every job's result and the wall time."""

    results: list[JobResult]
    wall: float

    @property
    def ok(self) -> list[JobResult]:
        return [r for r in self.results if r.ok]

    def as_json(self) -> dict[str, Any]:
        """What `litert batch --json` prints."""
        return {
            "wall_seconds": round(self.wall, 1),
            "passed": len(self.ok) == len(self.results),
            "jobs": [r.as_json() for r in self.results],
        }


def run(
    planned: list[Job],
    log_dir: Path,
    report: Callable[[str, Job, JobResult | None], None],
    jobs: int | None = None,
    ray: str | None = None,
) -> Outcome:
    """Run the jobs on Ray (`ray`: an address or "local") or in the local pool (at most
    `jobs` at once); `report` hears of each start and result. BatchInterrupted on Ctrl-C."""
    started = time.monotonic()
    results = run_ray(planned, ray, log_dir, report) if ray else run_local(planned, jobs, log_dir, report)
    return Outcome(results, time.monotonic() - started)
