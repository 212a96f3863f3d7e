"""How a parity report is judged: near-ties (the reference itself nearly undecided) are not
held against a bundle; real disagreement still fails. Unit-level: the measurement itself is
tested end to end in test_verify.py."""

from __future__ import annotations

from litert.verify import THRESHOLDS, ParityReport, PromptReport, judge


def prompt(name: str, top1: float, top1_margin: float, identical: int = 32, parted_at_near_tie: bool = False,
           kl: float = 0.0, runtime: tuple[int, float, bool | None] | None = None) -> PromptReport:  # fmt: skip
    """`runtime`: where the runtime parted from the .tflite's own answer (tokens, the .tflite's
    margin there, whether the raw prompt followed it); None when it followed it whole."""
    follows, gap, raw = runtime if runtime else (32, None, None)
    return PromptReport(name, prompt_tokens=20, positions=32, top1=top1, kl_mean=kl, max_abs_logit_diff=0.1,
                        greedy_identical=identical, greedy_reference=32, greedy_complete=identical == 32,
                        top1_margin=top1_margin, parted_at_near_tie=parted_at_near_tie, runtime_follows=follows,
                        runtime_follows_whole=runtime is None, runtime_parting_margin=gap,
                        raw_follows_whole=raw)  # fmt: skip


def report(recipe: str, *prompts: PromptReport) -> ParityReport:
    r = ParityReport("b", "c", recipe, THRESHOLDS[recipe], list(prompts))
    judge(r)
    return r


def test_near_ties_are_not_failures() -> None:
    # The default-initialized Gemma3 at dynamic_int8: top-1 93.8 %, KL 0, every miss a near-tie.
    r = report("dynamic_int8", prompt("a", 0.938, 1.0), prompt("b", 0.938, 1.0))
    assert r.passed, r.failures
    assert "93.8% (100.0% counting near-ties)" in r.summary_line()


def test_real_disagreement_still_fails() -> None:
    r = report("dynamic_int8", prompt("a", 0.90, 0.90), prompt("b", 0.90, 0.91))
    assert not r.passed and any("top-1 agreement" in f for f in r.failures)
    broken = report("dynamic_int8", prompt("a", 1.0, 1.0, kl=0.2), prompt("b", 1.0, 1.0, kl=0.2))
    assert not broken.passed and any("mean KL" in f for f in broken.failures)


def test_an_answer_parting_at_a_near_tie_is_not_held_against_the_bundle() -> None:
    parted = report("none", prompt("a", 1.0, 1.0), prompt("raw-long", 1.0, 1.0, identical=1, parted_at_near_tie=True))
    assert parted.passed, parted.failures
    wrong = report("none", prompt("a", 1.0, 1.0), prompt("raw-long", 1.0, 1.0, identical=1))
    assert not wrong.passed and any("greedy tokens identical" in f for f in wrong.failures)


def test_margins_follow_the_recipe_noise() -> None:
    assert THRESHOLDS["none"].margin == 0.001
    assert THRESHOLDS["none"].margin < THRESHOLDS["fp16"].margin < THRESHOLDS["dynamic_int8"].margin
    assert THRESHOLDS["dynamic_int8"].margin < THRESHOLDS["dynamic_int4_block32"].margin


def test_the_message_blames_the_prompt_when_only_the_answers_part() -> None:
    # Teacher-forced exact, free-running apart on every prompt, and the runtime parts from the
    # .tflite's own answer at once while the raw prompt follows it: a template or tokenizer that
    # differs, not a model that computes something else.
    rendering = (0, 2.0, True)
    prompt_only = report("none", *(prompt(n, 1.0, 1.0, identical=0, runtime=rendering) for n in "ab"))
    assert not prompt_only.passed
    assert any("parts from the bundle's own greedy answer after 0 tokens" in f for f in prompt_only.failures)
    message = str(prompt_only.failure_error("x.litertlm", "hint"))
    assert "computes what the original computes on the same tokens" in message and "tokenizes" in message
    model = report("none", prompt("a", 0.5, 0.5, identical=0, kl=1.0), prompt("b", 0.5, 0.5, identical=0, kl=1.0))
    assert "does not compute what the original computes" in str(model.failure_error("x.litertlm", "hint"))


def test_the_runtime_parting_from_its_own_graph_is_the_engines_fault() -> None:
    # Teacher-forced exact, and the runtime parts from the .tflite's own answer even on the raw
    # prompt where the .tflite was sure of its choice: LiteRT-LM computes something else.
    engine = report("none", prompt("a", 1.0, 1.0), prompt("b", 1.0, 1.0, identical=3, runtime=(3, 0.5, False)))
    assert not engine.passed
    assert any("prompt 'b'" in f and "(the prompt as raw text too)" in f for f in engine.failures)
    message = str(engine.failure_error("x.litertlm", "hint"))
    assert "LiteRT-LM's answers part from the .tflite's own" in message and "not a conversion error" in message


def test_the_runtime_parting_at_a_tie_of_its_own_graph_is_not_a_failure() -> None:
    # The .tflite itself nearly undecided where the runtime chose otherwise (margin below the
    # recipe's): summation order, not another computation.
    tie = report("dynamic_int8", prompt("a", 1.0, 1.0), prompt("b", 1.0, 1.0, runtime=(5, 0.01, None)))
    assert tie.passed, tie.failures
    assert tie.runtime_follows_whole == 1 and "runtime = the .tflite's own answers 1/2" in tie.summary_line()


def test_answers_parting_where_the_runtime_follows_the_graph_blame_the_recipe() -> None:
    # Within the recipe's noise teacher-forced, the runtime follows the .tflite whole, yet the
    # answers part from transformers' on most prompts: quantization moved close choices.
    noisy = report("dynamic_int8", *(prompt(n, 0.96, 0.96, identical=1) for n in "abc"))
    assert not noisy.passed
    message = str(noisy.failure_error("x.litertlm", "hint"))
    assert "the runtime follows it" in message and "less lossy --quantize" in message


def _char_tokenizer():
    """Ids 0-25 are the letters a-z, 26 is one byte no decoder can show (printed as U+FFFD by
    one decoder, as a control character by another), 27 is the stop token."""
    from litert.tokenizer import BundleTokenizer

    def decode(ids: list[int]) -> str:
        return "".join("\ufffd" if i == 26 else "" if i == 27 else chr(ord("a") + i) for i in ids)

    return BundleTokenizer(encode=lambda text: [ord(c) - ord("a") for c in text], decode=decode)


def _logp(rows: list[list[float]]):
    import torch

    return torch.log_softmax(torch.tensor(rows), -1)


def test_answers_are_compared_as_text_a_character_no_decoder_shows_counting_as_one() -> None:
    from litert.verify import _parting

    tok = _char_tokenizer()
    flat = _logp([[0.0] * 28] * 4)
    # The runtime printed the unshowable byte as a control character: the same answer.
    assert _parting(tok, [0, 26, 1], "a\x11b", flat, {27}) == (3, True, None)


def test_where_the_runtime_parts_the_models_own_margin_is_measured() -> None:
    import math

    from litert.verify import _parting

    tok = _char_tokenizer()
    rows = [[0.0] * 28 for _ in range(3)]
    rows[1][1], rows[1][2] = 2.0, 1.0  # at the second token the model prefers "b" to "c" by 1 nat
    logp = _logp(rows)
    same, whole, gap = _parting(tok, [0, 1, 0], "acz", logp, {27})
    assert (same, whole) == (1, False) and math.isclose(gap, 1.0, abs_tol=1e-5)
    # The runtime stopped where the model went on: measured against the stop token.
    rows[1][27] = 0.5
    same, whole, gap = _parting(tok, [0, 1, 0], "a", _logp(rows), {27})
    assert (same, whole) == (1, False) and math.isclose(gap, 1.5, abs_tol=1e-5)
