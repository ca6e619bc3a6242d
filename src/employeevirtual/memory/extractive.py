"""The offline model's summary: deterministic and extractive (it writes no word of its own).

The summary is a list of sentences taken from the conversation, each tagged with its message
and speaker (``- #5 user: My locker code is 4417.``). Each sentence gets a score that depends on
its text and speaker only, so a rolling update is stable: the kept lines compete again with the
new batch's sentences, the best fit in the length limit, and ties keep the older line (a fact
stated once, early, is not pushed out by later ones of the same weight). What scores: the
person's own statements over the agent's, statements about themselves ("my", "I am", "prefer",
"remember", and the Portuguese forms), numbers and names; questions and pleasantries score low.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Line", "extractive_summary", "parse_lines"]

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_LINE = re.compile(r"^- #(\d+) (user|agent): (.+)$")
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_SELF = re.compile(
    r"\b(my|mine|i am|i'm|i have|i've|i live|i work|i like|i love|i hate|i prefer|i need|"
    r"i want|i don't|i do not|call me|remember|prefer|allergic|birthday|"
    r"meu|minha|meus|minhas|eu sou|eu tenho|moro|trabalho|prefiro|gosto|lembre|me chamo)\b",
    re.IGNORECASE,
)
_PLEASANTRY = re.compile(
    r"^(hi|hello|hey|thanks|thank you|ok|okay|sure|great|bye|ol[aá]|obrigad[oa]|tchau)\b",
    re.IGNORECASE,
)
MAX_SENTENCE = 240  # characters kept of one sentence


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    speaker: str  # user or agent
    text: str

    @property
    def rendered(self) -> str:
        return f"- #{self.seq} {self.speaker}: {self.text}"

    @property
    def score(self) -> float:
        words = _WORD.findall(self.text)
        score = 2.0 if self.speaker == "user" else 1.0
        if _SELF.search(self.text):
            score += 2.0
        if any(ch.isdigit() for ch in self.text):
            score += 1.0
        if any(w[:1].isupper() for w in words[1:]):
            score += 0.5  # a name, a place
        if self.text.rstrip().endswith("?"):
            score *= 0.3
        if len(words) < 4 or _PLEASANTRY.match(self.text):
            score *= 0.3
        return score


def parse_lines(summary: str) -> list[Line]:
    """The lines of an earlier extractive summary (other text, e.g. a model's, is dropped)."""
    lines = []
    for raw in summary.splitlines():
        match = _LINE.match(raw.strip())
        if match:
            lines.append(Line(int(match.group(1)), match.group(2), match.group(3)))
    return lines


def _sentences(seq: int, speaker: str, content: str) -> list[Line]:
    out = []
    for piece in _SENTENCE.findall(content):
        text = " ".join(piece.split())
        if len(text) > MAX_SENTENCE:
            text = text[: MAX_SENTENCE - 1] + "…"
        if text:
            out.append(Line(seq, speaker, text))
    return out


def extractive_summary(
    previous: str, messages: Sequence[tuple[int, str, str]], *, max_chars: int
) -> str:
    """``previous`` updated with ``messages`` ((seq, speaker, content), oldest first), at
    most ``max_chars`` long."""
    candidates = parse_lines(previous)
    for seq, speaker, content in messages:
        candidates.extend(_sentences(seq, speaker, content))
    seen: set[str] = set()
    unique: list[Line] = []
    for line in candidates:  # the first telling of a sentence is kept
        key = " ".join(_WORD.findall(line.text.lower()))
        if key and key not in seen:
            seen.add(key)
            unique.append(line)
    ranked = sorted(unique, key=lambda line: (-line.score, line.seq))
    kept: list[Line] = []
    used = 0
    for line in ranked:
        size = len(line.rendered) + 1
        if used + size <= max_chars:
            kept.append(line)
            used += size
    kept.sort(key=lambda line: line.seq)
    return "\n".join(line.rendered for line in kept)
