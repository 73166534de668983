"""Direct CTranslate2 Whisper decoding of short utterances, batched.

faster-whisper's `transcribe()` always encodes a 30 s window. An utterance from the endpointer is
usually a few seconds, and the CTranslate2 encoder accepts a shorter mel window, whose cost falls
with its length (measured here on tiny.en: 10 s window 0.10 s vs 30 s window 0.9 s). So each
utterance is encoded with a window of its own length plus `pad_s` of silence, several utterances of
one decode kind are stacked into one batch, and word times come from the model's cross-attention
alignment (`find_alignment`). Audio longer than a window falls back to `transcribe()`.

Window lengths are rounded up to whole seconds (`BUCKET_FRAMES`): the CPU backend keeps compiled
kernels and buffers per input shape, and with a window per exact length their number (and the resident
memory) grew for as long as the hub ran; 28 buckets bound it. With `pad_s` 1.5 the mean padding is
2 s, as before bucketing (offline WER over the English manifest clips unchanged: 3.1 %).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.audio import HUB_RATE
from ..core.work import on_final_lane
from .base import Result, Segment, TokenLogprob, TranscribeOptions, WordTiming
from .text_guard import (
    compression_ratio,
    echoes,
    loops,
    non_speech_phrase,
    non_speech_tail,
    restart_tail,
    self_repeat,
)

N_FRAMES = 3000          # 30 s of 10 ms mel frames
FRAMES_PER_SECOND = 100
BUCKET_FRAMES = 100      # encoder windows are whole seconds
SAMPLE_RATE = HUB_RATE  # Whisper runs at 16 kHz, the hub rate
SHORT_LID_S = 2.0        # language ID over less audio than this (a short utterance) ...
SHORT_LID_WINDOW_S = 10.0  # ... is encoded in a window padded with silence to this length


def drop_trailing_repeats(text: str, min_period: int = 3) -> str:
    """Repetition-loop guard: "a b c. a b c. a b c" -> "a b c." when the loop is at the end
    (words compared without case or punctuation)."""
    words = text.split()
    norm = [re.sub(r"[^\w']", "", w.lower()) for w in words]
    changed = True
    while changed:
        changed = False
        for p in range(min_period, len(norm) // 2 + 1):
            if norm[-p:] == norm[-2 * p:-p]:
                words, norm = words[:-p], norm[:-p]
                changed = True
                break
    return " ".join(words)


def final_guard(r: Result, opts: TranscribeOptions, max_compression: float = 2.4) -> str:
    """How a final hypothesis looks: "ok"; "non_speech" (a known non-speech phrase in any language, and the
    decoder was not confident there was speech: no-speech probability over 0.2 or mean log-probability under
    -0.7); "loop" (a word or n-gram 3+ times back to back, in unspaced scripts a run of characters, text that
    compresses too well, a restart of the opening words, or credits after the words); "repeat" (the whole
    text is one phrase said twice: judged without a forced prefix only, the stream judges its own finals);
    "echo" (it repeats the prompt). Only the words after a forced `prefix` are judged."""
    text = r.text
    if opts.prefix:
        n = len(opts.prefix.split())
        text = " ".join(text.split()[n:])
    if not text.strip():
        return "ok"
    seg = r.segments[0] if r.segments else None
    no_speech = seg.no_speech_prob or 0.0 if seg is not None else 0.0
    logprob = seg.avg_logprob or 0.0 if seg is not None else 0.0
    if non_speech_phrase(text) and (no_speech > 0.2 or logprob < -0.7):
        return "non_speech"
    if loops(text) or compression_ratio(text) > max_compression or restart_tail(text) or non_speech_tail(text):
        return "loop"
    if not opts.prefix and self_repeat(text):
        return "repeat"
    if echoes(text, opts.prompt):
        return "echo"
    return "ok"


@dataclass(frozen=True)
class Thresholds:
    no_speech: float = 0.6
    log_prob: float = -1.0
    compression_ratio: float = 2.4


class CT2Whisper:
    """Wraps a loaded faster_whisper.WhisperModel; every method is blocking (run by the scheduler)."""

    def __init__(self, model: Any, thresholds: Thresholds, pad_s: float = 1.5, interim_model: Any = None,
                 patience: float = 1.0, suppress: tuple[int, ...] = (), min_final_window_s: float = 0.0) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.m = model
        self.patience = patience  # beam search: stop after beam_size * patience finished hypotheses
        self.suppress = suppress  # token ids never written, beside Whisper's own set
        self.interim = interim_model  # a ctranslate2 Whisper replica for interim decodes, if any
        self.th = thresholds
        self.pad_frames = int(pad_s * FRAMES_PER_SECOND)
        # a final's window is at least this long (partials keep their own length): Whisper learnt on 30 s
        # windows where short speech sits in silence (the options' `min_final_window_s`)
        self.min_final_frames = min(N_FRAMES, int(min_final_window_s * FRAMES_PER_SECOND))
        self._tok_cls = Tokenizer
        self._tokenizers: dict[tuple[str | None, str], Any] = {}

    def fits(self, audio: np.ndarray) -> bool:
        return len(audio) <= (N_FRAMES - self.pad_frames) * SAMPLE_RATE // FRAMES_PER_SECOND

    def tokenizer(self, language: str | None, task: str = "transcribe") -> Any:
        tok = self._tokenizers.get((language, task))
        if tok is None:
            multilingual = self.m.model.is_multilingual
            tok = self._tok_cls(self.m.hf_tokenizer, multilingual, task=task if multilingual else "transcribe",
                                language=(language or "en") if multilingual else "en")
            self._tokenizers[(language, task)] = tok
        return tok

    def _features(self, audios: list[np.ndarray], min_frames: int = 0) -> tuple[np.ndarray, list[int]]:
        """The batch's log-mel features in one window: the longest audio + `pad_s`, in whole seconds, and at
        least `min_frames`; each audio's own frame count."""
        from faster_whisper.audio import pad_or_trim

        feats = [self.m.feature_extractor(a) for a in audios]
        lengths = [f.shape[-1] for f in feats]
        frames = max(max(lengths) + self.pad_frames, min_frames)
        frames = min(N_FRAMES, frames + (-frames) % BUCKET_FRAMES)  # even, as the encoder halves it
        batch = np.stack([pad_or_trim(f, frames) for f in feats]).astype(np.float32)
        return np.ascontiguousarray(batch), lengths

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Language ID over `audio` (float32, a second or two of speech): one encoder pass and the decoder's
        language-token distribution, most likely first: [("zh", 0.97), ...]. The window is the audio's own
        length (whole seconds, no padding: the same answers on the dev clips as with it, and cheaper), except
        for audio shorter than `SHORT_LID_S` (an utterance that ended before the language ID's window filled:
        a short command), which is padded with silence to `SHORT_LID_WINDOW_S`: in a window of its own length
        base mistook English words for other languages ("die" vi 0.70, "my native country" tl 0.53); padded
        (Whisper learnt on 30 s windows, where short speech sits in silence) it names them, for ~130 ms of one
        core instead of ~30 (docs/BENCHMARKS.md, "Short commands")."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        if not self.m.model.is_multilingual:
            return [("en", 1.0)]
        feats = self.m.feature_extractor(audio)
        frames = feats.shape[-1]
        frames = max(BUCKET_FRAMES, min(N_FRAMES, frames + (-frames) % BUCKET_FRAMES))
        if len(audio) < SHORT_LID_S * SAMPLE_RATE:
            frames = max(frames, int(SHORT_LID_WINDOW_S * FRAMES_PER_SECOND))
        batch = np.ascontiguousarray(pad_or_trim(feats, frames)[None].astype(np.float32))
        enc = self.m.model.encode(ctranslate2.StorageView.from_array(batch))
        return [(token.strip("<|>"), float(p)) for token, p in self.m.model.detect_language(enc)[0]]

    def decode_batch(self, audios: list[np.ndarray], opts: list[TranscribeOptions], beam_size: int) -> list[Result]:
        """One decode kind's utterances at once: encode, language, prompts, generate, then each result
        (guarded), its word times and log-probabilities where asked."""
        import ctranslate2

        language = opts[0].language if opts[0].language not in (None, "auto") else None
        tok = self.tokenizer(language, opts[0].task)
        features, lengths = self._features(audios, 0 if opts[0].interim else self.min_final_frames)
        model = self._model_for(opts[0])
        enc = model.encode(ctranslate2.StorageView.from_array(features))
        detected = self._language_tokens(model, enc, language, len(audios))
        prompts = self._prompts(tok, opts, detected)
        temperature = opts[0].temperature or 0.0
        results = self._generate(model, enc, tok, prompts, audios, temperature, beam_size)
        out = [self._result(tok, r, audio, lang.strip("<|>"), temperature)
               for r, audio, lang in zip(results, audios, detected, strict=True)]
        self._add_words(enc, tok, opts, lengths, out)
        for i, o in enumerate(opts):
            if o.logprobs:
                out[i].logprobs = self._logprobs(model, enc, tok, i, detected[i], out[i], lengths[i])
        return out

    def _model_for(self, o: TranscribeOptions) -> Any:
        """Partials decode on the low-priority replica, unless a free final lane took them."""
        return self.interim if self.interim is not None and o.interim and not on_final_lane() else self.m.model

    def _language_tokens(self, model: Any, enc: Any, language: str | None, n: int) -> list[str]:
        """Each item's language token ("<|en|>"): detected by a multilingual model when none is set."""
        if self.m.model.is_multilingual and language is None:
            return [langs[0][0] for langs in model.detect_language(enc)]
        return [f"<|{language or 'en'}|>"] * n

    def _prompts(self, tok: Any, opts: list[TranscribeOptions], lang_tokens: list[str]) -> list[list[int]]:
        """Each item's decoder prompt: the client's hotwords and prompt (the same for every item of a batch)
        first, always kept, then the most recent context tokens, the prefix and the item's language."""
        previous_all = [tok.encode(" " + o.prompt.strip()) if o.prompt else [] for o in opts]
        fixed = " ".join([*opts[0].hotwords, *([opts[0].initial_prompt.strip()] if opts[0].initial_prompt else [])])
        session = tok.encode(" " + fixed)[: self.m.max_length // 4] if fixed else []
        # CTranslate2 needs <|startoftranscript|> at one position across a batch: keep the same number
        # of context tokens (the most recent ones) for every item
        keep = min(len(p) for p in previous_all)
        prompts = []
        for o, lang_token, previous in zip(opts, lang_tokens, previous_all, strict=True):
            previous = session + (previous[len(previous) - keep:] if keep else [])
            p = self.m.get_prompt(tok, previous, without_timestamps=True, prefix=o.prefix)
            if self.m.model.is_multilingual:
                p[p.index(tok.language)] = tok.tokenizer.token_to_id(lang_token)
            prompts.append(p)
        return prompts

    def _generate(self, model: Any, enc: Any, tok: Any, prompts: list[list[int]], audios: list[np.ndarray],
                  temperature: float, beam_size: int) -> Any:
        from faster_whisper.transcribe import get_suppressed_tokens

        # speech runs at most ~8 tokens/s: a cap by duration stops a decoder that loops on silence
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        max_length = min(self.m.max_length, max(len(p) for p in prompts) + int(longest * 8) + 16)
        # a temperature above 0 samples from the whole distribution (OpenAI `temperature`); 0 is greedy/beam
        sampling = {"sampling_topk": 0, "sampling_temperature": temperature} if temperature > 0 else {}
        return model.generate(
            enc, prompts, beam_size=1 if sampling else beam_size, max_length=max_length, suppress_blank=True,
            patience=1.0 if sampling else self.patience,
            suppress_tokens=[*get_suppressed_tokens(tok, (-1,)), *self.suppress], return_scores=True,
            return_no_speech_prob=True,
            **sampling,
        )

    def _result(self, tok: Any, r: Any, audio: np.ndarray, lang: str, temperature: float) -> Result:
        """One generated sequence as a Result: its text without a trailing loop, emptied when the decoder
        heard no speech or the text compresses too well."""
        tokens = [t for t in r.sequences_ids[0] if t < tok.eot]  # includes a `prefix` (CTranslate2)
        # a character whose bytes span tokens, cut at the end of the decode, decodes as U+FFFD: not text
        text = tok.decode(tokens).strip().rstrip("\ufffd").rstrip()
        short = drop_trailing_repeats(text)
        if short != text:
            text, tokens = short, tok.encode(" " + short)
        n = len(r.sequences_ids[0])
        avg_logprob = r.scores[0] * n / (n + 1)
        silent = r.no_speech_prob > self.th.no_speech and avg_logprob < self.th.log_prob
        ratio = compression_ratio(text)
        if silent or ratio > self.th.compression_ratio:
            text = ""
        seg = Segment(0.0, len(audio) / SAMPLE_RATE, text, avg_logprob=float(avg_logprob),
                      no_speech_prob=float(r.no_speech_prob), compression_ratio=ratio, temperature=temperature,
                      tokens=tuple(tokens))
        return Result(text=text, language=lang, duration_ms=len(audio) * 1000 // SAMPLE_RATE,
                      segments=[seg] if text else [])

    def _add_words(self, enc: Any, tok: Any, opts: list[TranscribeOptions], lengths: list[int],
                   out: list[Result]) -> None:
        """Word times for the final items that asked for them and have text."""
        idx = [i for i, o in enumerate(opts) if o.word_timestamps and out[i].text and not o.interim]
        if idx:
            self._align(enc, tok, idx, [list(out[i].segments[0].tokens) for i in idx], lengths, out)

    def _logprobs(self, model: Any, enc: Any, tok: Any, i: int, lang_token: str, res: Result,
                  frames: int) -> list[TokenLogprob]:
        """Per-token log-probabilities of the decoded text: the decoder re-scores its own tokens
        (teacher-forced, CTranslate2 `align`)."""
        import ctranslate2

        tokens = list(res.segments[0].tokens) if res.segments else []
        if not tokens:
            return []
        sot = list(tok.sot_sequence)
        if self.m.model.is_multilingual and tok.language in sot:
            sot[sot.index(tok.language)] = tok.tokenizer.token_to_id(lang_token)
        row = ctranslate2.StorageView.from_array(np.asarray(enc)[i:i + 1])
        probs = model.align(row, sot, [tokens], frames)[0].text_token_probs
        return [TokenLogprob(tok.decode([t]), float(np.log(max(p, 1e-12)))) for t, p in zip(tokens, probs, strict=False)]

    def _align(self, enc: Any, tok: Any, idx: list[int], tokens: list[list[int]], lengths: list[int],
               out: list[Result]) -> None:
        import ctranslate2

        if len(idx) != len(out):  # align only the items that asked: take their encoder rows
            enc = ctranslate2.StorageView.from_array(np.asarray(enc)[idx])
        words = self.m.find_alignment(tok, tokens, enc, max(lengths[i] for i in idx))
        for i, ws in zip(idx, words, strict=True):
            out[i].words = [WordTiming(w["word"].strip(), int(w["start"] * 1000), int(w["end"] * 1000),
                                       float(w["probability"])) for w in ws if w["word"].strip()]
