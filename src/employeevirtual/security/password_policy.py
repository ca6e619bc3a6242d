"""Password rules in the spirit of NIST SP 800-63B: length bounds, a blocklist of common
passwords, and no personal data. No composition rules (they push users to predictable
patterns). The upper bound keeps the password hash (Argon2) from becoming a DoS vector.

Lengths count Unicode code points after NFKC normalisation; comparisons are
case-insensitive.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = ["PasswordPolicy", "is_common_password"]

# Shorter fragments of an email or name match too much by accident ("al", "li").
_MIN_PERSONAL_FRAGMENT = 3


@cache
def _common_passwords() -> frozenset[str]:
    text = files(__package__ or "employeevirtual.security").joinpath("common_passwords.txt")
    lines = text.read_text(encoding="utf-8").splitlines()
    return frozenset(w for line in lines if (w := line.strip()) and not w.startswith("# "))


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


def is_common_password(password: str) -> bool:
    return _fold(password).strip() in _common_passwords()


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 10
    max_length: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError("need 1 <= min_length <= max_length")

    def problems(
        self, password: str, *, email: str | None = None, name: str | None = None
    ) -> list[str]:
        """Human-readable reasons the password is unacceptable; empty when it is fine."""
        problems: list[str] = []
        length = len(unicodedata.normalize("NFKC", password))
        if length < self.min_length:
            problems.append(f"Password must be at least {self.min_length} characters long.")
        if length > self.max_length:
            problems.append(f"Password must be at most {self.max_length} characters long.")
        if is_common_password(password):
            problems.append("Password is too common; choose one that is harder to guess.")
        folded = _fold(password)
        if email:
            local = _fold(email.strip()).split("@", 1)[0]
            if len(local) >= _MIN_PERSONAL_FRAGMENT and local in folded:
                problems.append("Password must not contain your email address.")
        if name:
            parts = [p for p in _fold(name).split() if len(p) >= _MIN_PERSONAL_FRAGMENT]
            if any(p in folded for p in parts):
                problems.append("Password must not contain your name.")
        return problems

    def is_acceptable(
        self, password: str, *, email: str | None = None, name: str | None = None
    ) -> bool:
        return not self.problems(password, email=email, name=name)
