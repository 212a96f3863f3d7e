"""The `litert` command. Thin: parses arguments, calls the modules, prints.

Errors are printed here and only here: a LitertError becomes one line on stderr and
exit status 1. Heavy modules are imported inside the commands that need them, so
`litert --help` and `litert plugins list` answer in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from litert.errors import LitertError
from litert.types import QUANTIZATION_RECIPES

app = typer.Typer(
    help="Convert Hugging Face LLM checkpoints into LiteRT-LM bundles (.litertlm) and run them.",
    no_args_is_help=True,
    add_completion=True,  # litert --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Usage lines name required arguments plainly (`litert convert [OPTIONS] SOURCE`), as
# click and every other CLI do; typer would write `{SOURCE}`.
_typer_metavar = typer.core.TyperArgument.make_metavar
typer.core.TyperArgument.make_metavar = lambda self, ctx, *, usage=False: _typer_metavar(  # type: ignore[method-assign]
    self, ctx, usage=usage
).strip("{}")

plugins_app = typer.Typer(help="Inspect the installed model-family plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
models_app = typer.Typer(help="Manage the stored (converted) models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        from litert import __version__

        print(f"litert {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Convert Hugging Face LLM checkpoints into LiteRT-LM bundles (.litertlm) and run them."""


def _parse_lengths(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise LitertError(
            f"--prefill-lengths must be comma-separated integers, got {text!r}", "pass e.g. --prefill-lengths 8,64,128"
        ) from None
    return values


@app.command()
def convert(
    source: Annotated[
        str, typer.Argument(help="A local checkpoint directory, or a Hub id such as Qwen/Qwen3-0.6B.", metavar="SOURCE")
    ],
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Where to write the bundle [default: ./NAME.litertlm].", metavar="PATH"),
    ] = None,
    quantize: Annotated[
        Optional[str],
        typer.Option(
            help=f"Quantization recipe: {', '.join(QUANTIZATION_RECIPES)} [default: the family's, dynamic_int8].",
            metavar="RECIPE",
            autocompletion=lambda incomplete: [r for r in QUANTIZATION_RECIPES if r.startswith(incomplete)],
        ),
    ] = None,
    prefill_lengths: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated prefill signature lengths [default: 8,64,128,256,512,1024].", metavar="N,N,..."
        ),
    ] = None,
    kv_cache_max_len: Annotated[
        Optional[int],
        typer.Option(help="KV cache length, the whole context a bundle holds [default: 1280].", metavar="N"),
    ] = None,
    family: Annotated[
        Optional[str],
        typer.Option(help="Use this family's plugin when several (or none) claim the checkpoint.", metavar="FAMILY"),
    ] = None,
    name: Annotated[
        Optional[str], typer.Option(help="Store the bundle under this name [default: from SOURCE].", metavar="NAME")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the converter's own output.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Measure the bundle against transformers after writing it.")
    ] = True,
    revision: Annotated[
        Optional[str],
        typer.Option(help="For a Hub id: a branch, tag or commit (the commit sha is recorded).", metavar="REV"),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            help="Accept pickle weights (*.bin) when there are no safetensors; loaded with weights_only=True."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the output file if it exists (and the store entry pointing at it).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object on stdout (progress stays on stderr).")
    ] = False,
) -> None:
    """Convert a checkpoint into a .litertlm bundle and store it under a name."""
    from litert.console import human_size, human_time
    from litert.convert import ConvertOptions
    from litert.convert import convert as run_convert

    if quantize is not None and quantize not in QUANTIZATION_RECIPES:
        raise LitertError(f"unknown quantization recipe {quantize!r}", f"use one of: {', '.join(QUANTIZATION_RECIPES)}")
    options = ConvertOptions(
        output=output,
        name=name,
        family=family,
        quantize=quantize,
        prefill_lengths=_parse_lengths(prefill_lengths),
        kv_cache_max_len=kv_cache_max_len,
        verbose=verbose,
        verify=verify,
        revision=revision,
        allow_pickle=allow_pickle,
        force=force,
    )
    result = run_convert(source, options)
    report = result.parity
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
        if report is not None and not report.passed:
            raise report.failure_error(result.path, "see the parity report in the JSON output")
        return
    if result.cached_from is not None:
        print(
            f"Already converted with the same inputs, settings and versions: {result.path} "
            f"({human_size(result.size)}) from the store in {human_time(result.seconds)}; "
            f"run it with: litert run {result.name} (--force converts again)"
        )
        if result.stored_parity:
            print(result.stored_parity)
        return
    print(
        f"Converted {source} -> {result.path} ({human_size(result.size)}, {result.size:,} bytes) "
        f"in {human_time(result.seconds)}; run it with: litert run {result.name}"
    )
    if report is not None:
        if not report.passed:
            print(report.table())
            raise report.failure_error(
                result.path,
                "see the report above; "
                + (
                    "under --quantize none the bundle must compute what transformers computes: this is a "
                    "conversion bug — report it to the family plugin's maintainers with the report"
                    if report.quantize == "none"
                    else "convert with --quantize none to tell quantization error from a conversion bug"
                ),
            )
        print(report.summary_line())


def _read_prompt(prompt: str | None) -> str | None:
    if prompt is not None:
        return prompt
    if sys.stdin is None or sys.stdin.isatty():
        return None
    try:
        text = sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise LitertError(
            f"standard input is not text (byte {exc.start} is not UTF-8)", "pipe a UTF-8 text prompt into litert run"
        ) from exc
    if "\0" in text:
        raise LitertError("standard input holds binary data (NUL bytes), not a prompt", "pipe a text prompt")
    if not text.strip():
        raise LitertError(
            "the prompt on standard input is empty", 'pass a prompt, e.g. printf "Hello\\n" | litert run MODEL'
        )
    return text.strip("\n")


def _stream(chat: object, text: str) -> None:
    for chunk in chat.send(text):  # type: ignore[attr-defined]
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()


@app.command()
def run(
    model: Annotated[
        str,
        typer.Argument(
            help="A .litertlm bundle path, a stored name, or a Hub id (converted first if needed).", metavar="MODEL"
        ),
    ],
    prompt: Annotated[
        Optional[str],
        typer.Option("--prompt", "-p", help="Answer this prompt and exit (default: read stdin).", metavar="TEXT"),
    ] = None,
    system: Annotated[
        Optional[str], typer.Option(help="A system message for the conversation.", metavar="TEXT")
    ] = None,
    temperature: Annotated[
        Optional[float], typer.Option(help="Sampling temperature; 0 is greedy.", metavar="T")
    ] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Sample from the K most likely tokens.", metavar="K")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling probability mass.", metavar="P")] = None,
    max_tokens: Annotated[
        Optional[int], typer.Option(help="Stop an answer after this many tokens.", metavar="N")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed for sampling.", metavar="N")] = None,
    show_reasoning: Annotated[bool, typer.Option(help="Keep empty reasoning blocks in the output.")] = False,
    think: Annotated[
        Optional[bool],
        typer.Option(
            "--think/--no-think",
            help="Switch the model's reasoning on or off (enable_thinking), where the chat template supports it.",
        ),
    ] = None,
    revision: Annotated[
        Optional[str], typer.Option(help="For a Hub id: the revision the bundle must come from.", metavar="REV")
    ] = None,
    convert: Annotated[
        bool,
        typer.Option(
            "--convert", help="For a Hub id whose repository holds both a bundle and a checkpoint: convert instead."
        ),
    ] = False,
    raw: Annotated[
        Optional[bool],
        typer.Option(
            "--raw/--chat",
            help="Send the prompt as plain text to continue, without turn markers (base models); "
            "default: raw exactly when the bundle has no chat template.",
        ),
    ] = None,
) -> None:
    """Chat with a bundle, or answer one prompt given with --prompt or on stdin."""
    from litert import store
    from litert.runtime import Chat, RunOptions, quiet_runtime_env

    text = _read_prompt(prompt)
    from litert.resolution import bundle_for

    path = bundle_for(model, revision, convert)
    entry = store.entry_for(path)
    if entry and entry.get("parity", {}).get("passed") is False:
        print(f"warning: this bundle failed its parity check: {entry['parity'].get('summary')}", file=sys.stderr)
    if think is not None:
        from litert.bundle import read_bundle

        if not read_bundle(path).summary.get("reasoning_tags"):
            print(
                f"warning: {model} has no reasoning mode; --{'' if think else 'no-'}think changes nothing",
                file=sys.stderr,
            )
    quiet_runtime_env()
    options = RunOptions(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        system=system,
        show_reasoning=show_reasoning,
        thinking=think,
        raw=raw,
    )
    from litert.console import captured_native_output

    with captured_native_output(store.log_path("last-run.log"), fds=(2,)), Chat(path, options) as chat:
        if text is not None:
            _stream(chat, text)
            return
        _interactive(chat, model)


@app.command()
def pull(
    repo: Annotated[str, typer.Argument(help="A Hub repository holding a .litertlm bundle.", metavar="ORG/NAME")],
    file: Annotated[
        Optional[str], typer.Option(help="Which bundle, when the repository holds several.", metavar="NAME.litertlm")
    ] = None,
    revision: Annotated[Optional[str], typer.Option(help="A branch, tag or commit.", metavar="REV")] = None,
) -> None:
    """Download a pre-converted bundle from the Hugging Face Hub and store it (run it with `litert run ORG/NAME`)."""
    from litert import store
    from litert.console import human_size
    from litert.resolution import pull_bundle

    path = pull_bundle(repo, revision, file)
    name = next((n for n, e in store.load_index().items() if e.get("path") == str(path.resolve())), repo)
    entry = store.load_index().get(name) or {}
    print(
        f"Pulled {repo} @ {str(entry.get('revision'))[:12]} -> {path} ({human_size(path.stat().st_size)}); "
        f"run it with: litert run {name}"
    )


@app.command()
def serve(
    models: Annotated[
        Optional[list[str]],
        typer.Argument(help="Stored names or .litertlm paths to serve (default: every stored model).", metavar="MODEL"),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default answers this machine only; anything else (e.g. 0.0.0.0) "
            "lets other machines use the server, which has no authentication.",
            metavar="ADDRESS",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.", metavar="PORT")] = 8000,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            envvar="LITERT_API_KEY",
            help="Require 'Authorization: Bearer KEY' on every request (or set LITERT_API_KEY).",
            metavar="KEY",
            show_envvar=False,
        ),
    ] = None,
) -> None:
    """Serve models over the OpenAI API until Ctrl-C: /v1/models, /v1/chat/completions, /v1/completions."""
    from litert import serve as serving
    from litert.runtime import quiet_runtime_env

    if not 0 <= port <= 65535:
        raise LitertError(f"port {port} is not a TCP port", "pass --port between 1 and 65535 (0 picks a free one)")

    served = serving.resolve_models(models or [])
    quiet_runtime_env()
    serving.serve(served, host, port, api_key=api_key or None)


@app.command()
def batch(
    spec: Annotated[
        Path, typer.Argument(help="A TOML spec of sources and settings (see docs/batch.md).", metavar="SPEC")
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Write every bundle into this directory [default: the store].", metavar="DIR"
        ),
    ] = None,
    jobs: Annotated[
        Optional[int],
        typer.Option(
            help="At most this many conversions at once [default: as memory allows, at most the cores].", metavar="N"
        ),
    ] = None,
    ray: Annotated[
        Optional[str],
        typer.Option(
            "--ray",
            help="Run the jobs as Ray tasks on the cluster at ADDRESS ('auto', 'ray://HOST:10001'), or on a Ray "
            "started for this batch with 'local' (pip install 'litert[ray]').",
            metavar="ADDRESS",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Convert many models from one spec; jobs already in the store are answered from it (a batch resumes)."""
    import signal

    from litert import batch as batching
    from litert.console import Interrupted, _private_stderr, human_size, human_time

    if jobs is not None and jobs < 1:
        raise LitertError(f"--jobs must be at least 1, got {jobs}", "e.g. --jobs 2")
    planned, log_dir = batching.prepare(spec, output)
    err = _private_stderr()
    total, finished = len(planned), 0
    where = f"on Ray ({ray})" if ray else "locally"
    print(f"Batch {spec}: {total} jobs, {where}; logs in {log_dir}", file=err, flush=True)

    def report(event: str, job: batching.Job, result: batching.JobResult | None) -> None:
        nonlocal finished
        if result is None:
            print(f"      {event:9} {job.name} ({job.quantize})", file=err, flush=True)
            return
        finished += 1
        detail = (
            f"{result.status} in {human_time(result.seconds or 0)}, peak {human_size(result.peak_bytes or 0)}"
            + (f", parity {result.parity}" if result.parity else "")
            + (f": {result.error}" if result.error and not result.ok else "")
        )
        print(f"[{finished}/{total}] {job.name}: {detail}", file=err, flush=True)

    try:
        outcome = batching.run(planned, log_dir, report, jobs=jobs, ray=ray)
    except batching.BatchInterrupted as stop:
        for line in batching.table(stop.results):
            print(line, file=err)
        raise Interrupted(signal.SIGINT) from None
    results, wall, ok = outcome.results, outcome.wall, outcome.ok
    if as_json:
        print(json.dumps(outcome.as_json(), indent=2))
    else:
        for line in batching.table(results):
            print(line)
    converted = sum(r.status == "converted" for r in ok)
    print(
        f"{len(ok)} of {total} jobs done ({converted} converted, {len(ok) - converted} already in the store) "
        f"in {human_time(wall)}"
        + (f"; {total - len(ok)} failed — their logs are in {log_dir}" if len(ok) < total else ""),
        file=err,
        flush=True,
    )
    if len(ok) < total:
        raise typer.Exit(1)


@app.command()
def push(
    name: Annotated[str, typer.Argument(help="A stored model name (see `litert models list`).", metavar="NAME")],
    repo: Annotated[str, typer.Argument(help="The Hub repository to push to (created if needed).", metavar="ORG/REPO")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    license_id: Annotated[
        Optional[str],
        typer.Option("--license", help="The licence id for the card [default: the source's].", metavar="ID"),
    ] = None,
) -> None:
    """Upload a stored bundle to the Hugging Face Hub with a model card (source, settings, parity, provenance)."""
    from litert import publish

    pushed = publish.push(name, repo, private, license_id)
    if pushed.licence.id is None:
        print(
            f"warning: the source's licence is {pushed.licence.origin}; the card says 'unknown' — "
            "push again with --license ID once you know it",
            file=sys.stderr,
        )
    print(f"Pushed {name} to {pushed.url} ({pushed.file} and README.md, commit {pushed.commit[:12]}); "
          f"run it anywhere with: litert run {repo}")  # fmt: skip


CHAT_HELP = """commands:
  /help          this list
  /reset         forget the conversation so far
  /system TEXT   start over with TEXT as the system message
  /exit          leave (also /quit, /bye, Ctrl-D)"""


def _interactive(chat: Any, model: str) -> None:
    """The terminal chat: one line per message; slash commands are never sent to the model."""
    from litert.console import Interrupted, _private_stderr, clear_interrupted

    err = _private_stderr()
    print(f"Chatting with {model}. Type /help for commands, /exit or Ctrl-D to leave.", file=err, flush=True)
    while True:
        try:
            err.write(">>> ")
            err.flush()
            line = sys.stdin.readline()
        except (Interrupted, KeyboardInterrupt):
            print(file=err)
            raise  # Ctrl-C at the prompt leaves with 130, as shells expect
        if not line:
            print(file=err)
            return
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit", "/bye"):
            return
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command == "/help":
                print(CHAT_HELP, file=err, flush=True)
            elif command == "/reset":
                chat.reset()
                print("(conversation forgotten)", file=err, flush=True)
            elif command == "/system" and arg.strip():
                chat.reset(system=arg.strip())
                print("(new conversation with that system message)", file=err, flush=True)
            else:
                print(f"unknown command {command!r}; /help lists them", file=err, flush=True)
            continue
        try:
            _stream(chat, line)
        except (Interrupted, KeyboardInterrupt) as exc:
            if isinstance(exc, Interrupted) and exc.signum != 2:
                raise  # SIGTERM ends the chat
            clear_interrupted()
            print("\n[interrupted]", file=err, flush=True)
        except LitertError as exc:  # e.g. a message longer than the context: say so, keep chatting
            print(exc.render(), file=err, flush=True)
        for notice in chat.notices:
            print(notice, file=err, flush=True)
        chat.notices.clear()


@app.command()
def verify(
    checkpoint: Annotated[
        str, typer.Argument(help="The original Hugging Face checkpoint directory.", metavar="CHECKPOINT")
    ],
    bundle: Annotated[
        str, typer.Argument(help="A .litertlm bundle path, or a name from the model store.", metavar="BUNDLE")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    tokens: Annotated[int, typer.Option(help="Greedy tokens generated per prompt.", metavar="N")] = 32,
) -> None:
    """Measure a bundle against the transformers original: top-1, KL, max |Δlogit|, greedy tokens."""
    from litert import checkpoint as checkpoint_lib
    from litert import store
    from litert.console import captured_native_output
    from litert.convert import verify_bundle
    from litert.resolution import bundle_for
    from litert.runtime import quiet_runtime_env

    if tokens < 1:
        raise LitertError(f"--tokens must be at least 1, got {tokens}", "pass e.g. --tokens 32")
    ckpt = checkpoint_lib.resolve_source(checkpoint)
    path = bundle_for(bundle)
    quiet_runtime_env()
    with captured_native_output(store.log_path("last-verify.log")):
        report = verify_bundle(ckpt.path, path, tokens=tokens, quick=False)
    print(json.dumps(report.as_json(), indent=2) if as_json else report.table())
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def inspect(
    bundle: Annotated[str, typer.Argument(help="A .litertlm bundle path, or a stored name.", metavar="BUNDLE")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What a bundle carries: sections, signatures, prompt format, tokens, sampler, provenance, parity."""
    from litert import store
    from litert.inspection import describe, render

    info = describe(store.resolve_model(bundle))
    print(json.dumps(info, indent=2, default=str) if as_json else render(info))


@app.command()
def demo(
    family: Annotated[Optional[str], typer.Option(help="Only this family's tiny model.", metavar="FAMILY")] = None,
) -> None:
    """Convert and run the tiny model each installed family plugin ships."""
    from litert import store
    from litert.console import captured_native_output, human_time
    from litert.convert import ConvertOptions
    from litert.convert import convert as run_convert
    from litert.plugins import get_plugins
    from litert.runtime import Chat, RunOptions, quiet_runtime_env

    plugins = get_plugins()
    shipped = [r for r in plugins.loaded() if r.manifest and r.manifest.tiny_checkpoint]
    if family is not None:
        shipped = [r for r in shipped if family in r.families or r.name == family]
    if not shipped:
        raise LitertError(
            "no installed plugin ships a tiny model" + (f" for family {family!r}" if family else ""),
            "install a family plugin, e.g. `pip install litert-qwen3`",
        )
    quiet_runtime_env()
    for rec in shipped:
        manifest = rec.manifest
        assert manifest is not None and manifest.tiny_checkpoint is not None
        print(f"== {rec.name} ({rec.distribution} {rec.version}): {manifest.tiny_checkpoint.name}", flush=True)
        out = store.home() / "demo" / f"{manifest.tiny_checkpoint.name}.litertlm"
        result = run_convert(
            str(manifest.tiny_checkpoint),
            ConvertOptions(
                output=out,
                family=rec.families[0] if rec.families else None,
                prefill_lengths=(8, 64),
                kv_cache_max_len=256,
            ),
        )
        print(f"> {manifest.demo_prompt}", flush=True)
        log = store.log_path("last-run.log")
        with captured_native_output(log, fds=(2,)), Chat(result.path, RunOptions(temperature=0.0)) as chat:
            _stream(chat, manifest.demo_prompt)
        if result.parity is not None:
            print(result.parity.summary_line(), flush=True)
        print(f"(converted in {human_time(result.seconds)}; chat with it: litert run {result.name})", flush=True)


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List stored models: name, source, revision, size, parity, path."""
    from litert import store
    from litert.console import human_size

    models = store.load_index()
    if as_json:
        print(json.dumps(models, indent=2, sort_keys=True))
        return
    if not models:
        print("No stored models. Convert one: litert convert SOURCE")
        return
    rows = [("NAME", "SOURCE", "REVISION", "QUANTIZE", "SIZE", "PARITY", "PATH")]
    for name, e in sorted(models.items()):
        parity = e.get("parity", {}).get("passed")
        rows.append(
            (
                name,
                e.get("source", "?") if not Path(e.get("source", "")).is_absolute() else "(local)",
                (e.get("revision") or "-")[:12],
                e.get("quantize", "?"),
                human_size(int(e.get("size", 0))),
                {True: "pass", False: "FAIL", None: "-"}[parity],
                e.get("path", "?") + ("" if Path(e.get("path", "")).is_file() else " (missing)"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@models_app.command("rm")
def models_rm(
    name: Annotated[str, typer.Argument(help="A stored model name.", metavar="NAME")],
    keep_file: Annotated[bool, typer.Option(help="Forget the name but keep the bundle file.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete a bundle outside the store without asking.")] = False,
) -> None:
    """Remove a stored model and its bundle file (a file outside the store only after asking)."""
    import contextlib

    from litert import store

    entry = store.load_index().get(name)
    bundle = store.deletable_bundle(Path(entry["path"])) if entry else None
    outside = bundle is not None and (store.home() / "models").resolve() not in bundle.parents
    if bundle is not None and outside and not keep_file and not yes:
        if not sys.stdin.isatty():
            raise LitertError(
                f"{name}'s bundle {bundle} is outside the model store, so litert does not delete it unasked",
                "pass --yes to delete it too, or --keep-file to only forget the name",
            )
        print(f"Forget {name!r} and delete {bundle} too? [y/N: forget the name, keep the file] ",
              end="", file=sys.stderr, flush=True)  # fmt: skip
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            keep_file = True
    entry = store.remove(name)
    if keep_file or bundle is None:
        kept = "" if keep_file else f" (kept {entry['path']}: not a bundle file litert deletes)"
        print(f"Removed {name}{kept}")
        return
    with contextlib.suppress(FileNotFoundError):
        bundle.unlink()
    print(f"Removed {name} (deleted {bundle})")


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="A stored model name.", metavar="NAME")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Everything known about a stored model: source, settings, provenance, parity, path."""
    from litert import store
    from litert.bundle import read_bundle

    models = store.load_index()
    if name not in models:
        store.resolve_model(name)  # raises with a "did you mean"
    entry = dict(models[name])
    path = Path(entry["path"])
    summary = read_bundle(path).summary if path.is_file() else {}
    info = {"name": name, **entry, "bundle": summary, "file_present": path.is_file()}
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    settings = summary.get("settings") or {}
    plugin = summary.get("plugin") or {}
    rows = [
        ("name", name),
        ("path", str(path) + ("" if path.is_file() else " (missing)")),
        ("source", str(entry.get("source", "?")) + (f" @ {entry['revision']}" if entry.get("revision") else "")),
        ("family", f"{entry.get('family', '?')} via {plugin.get('distribution', '?')} {plugin.get('version', '')}"),
        ("quantize", str(entry.get("quantize", "?"))),
        ("prefill", ",".join(map(str, settings.get("prefill_lengths", []))) or "?"),
        ("KV cache", str(settings.get("kv_cache_max_len", "?"))),
        (
            "chat template",
            {True: "yes", False: "no (base model: run sends raw text)", None: "?"}[summary.get("chat_template")],
        ),
        ("parity", (entry.get("parity") or {}).get("summary", "not verified")),
        ("stored", str(entry.get("stored_at", "?"))),
    ]
    for key, value in rows:
        print(f"{key:<14}{value}")


@plugins_app.command("new")
def plugins_new(
    name: Annotated[
        str, typer.Argument(help="The family name, e.g. llama (the package is litert-NAME).", metavar="NAME")
    ],
    architecture: Annotated[
        str, typer.Option(help="The config.json architecture the plugin claims.", metavar="ARCH")
    ] = "LlamaForCausalLM",
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package.", metavar="DIR")] = Path("."),
    tiny: Annotated[bool, typer.Option("--tiny/--no-tiny", help="Build a tiny checkpoint for the package.")] = True,
) -> None:
    """Create a new family plugin package that installs and passes the plugin kit."""
    from litert.scaffold import create

    root = create(name, directory, architecture=architecture, build_tiny=tiny)
    print(f"Created {root}")
    print(f"Next: pip install -e {root} && pytest {root / 'tests'}   (see docs/writing-plugins.md)")


@plugins_app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed family plugins: name, version, entry point, status, families."""
    from litert.plugins import get_plugins

    records = get_plugins().records
    if as_json:
        print(json.dumps([r.as_json() for r in records], indent=2))
        return
    if not records:
        print("No litert plugins installed. Install one, e.g.: pip install litert-qwen3")
        return
    rows = [("NAME", "VERSION", "DISTRIBUTION", "STATUS", "FAMILIES", "CORE", "ENTRY POINT")]
    for r in records:
        rows.append(
            (
                r.name, r.version, r.distribution, r.status, ",".join(r.families) or "-",
                r.requires_core or "-", r.entry_point,
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in records:
        if r.error:
            print(f"{r.name}: {r.error}")


def main() -> None:
    """Entry point of the `litert` console script; the one place errors are printed."""
    from litert.console import Interrupted, install_signal_handlers

    install_signal_handlers()
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exc:  # typer ends every command this way
        code = exc.code
    except LitertError as exc:
        sys.stdout.flush()
        print(exc.render(), file=sys.stderr)
        code = 1
    except (Interrupted, KeyboardInterrupt) as exc:
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
        print("\n" + ("terminated" if code == 143 else "interrupted"), file=sys.stderr)
    except Exception as exc:
        if os.environ.get("LITERT_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} — this is a bug in litert or a plugin; "
            "run again with LITERT_DEBUG=1 to see the traceback, and report it",
            file=sys.stderr,
        )
        code = 1
    _leave(code)


TOOLCHAIN_MODULES = ("torch", "tensorflow", "litert_lm")
"""Once one of these is loaded, Python's own shutdown of them takes about 2 s (measured: from
a conversion's last line to its exit; importing torch, litert-torch and TensorFlow and doing
nothing else, 2.0 s) and frees nothing the kernel would not."""


def _leave(code: int | str | None) -> None:
    """End the command with `code`. After the toolchain was loaded, everything this process
    wrote is already closed (files, the store, the engine: each in its own `with`), so the
    streams are flushed and the process ends at once instead of waiting ~2 s for the
    libraries' teardown. Not under Ray, whose local cluster is stopped by its exit hook."""
    if isinstance(code, str):  # SystemExit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    code = 0 if code is None else code
    if not any(m in sys.modules for m in TOOLCHAIN_MODULES) or "ray" in sys.modules:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe or a full disk: nothing more can be said on it
    os._exit(code)
