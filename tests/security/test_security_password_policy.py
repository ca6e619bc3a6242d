from __future__ import annotations

import pytest

from employeevirtual.security.password_policy import PasswordPolicy, is_common_password

GOOD = "violet-tram-harbour-42"


def test_good_password_has_no_problems() -> None:
    assert PasswordPolicy().problems(GOOD, email="jane.doe@example.com", name="Jane Doe") == []
    assert PasswordPolicy().is_acceptable(GOOD)


def test_too_short() -> None:
    problems = PasswordPolicy().problems("x7#kQ9!")
    assert problems == ["Password must be at least 10 characters long."]
    assert PasswordPolicy(min_length=5).problems("x7#kQ9!") == []


def test_too_long() -> None:
    assert PasswordPolicy().problems("a9" * 129) == [
        "Password must be at most 256 characters long."
    ]
    assert PasswordPolicy().problems("a9" * 128) == []


def test_length_counts_characters_not_bytes() -> None:
    assert PasswordPolicy().problems("ééééééééé€") == []


@pytest.mark.parametrize(
    "password",
    [
        "123456",
        "password",
        "Qwerty123",
        "ILOVEYOU",
        "admin123",
        "Welcome1",
        "PassW0rd",
        "letmein",
        "1234567890",
        "qwertyuiop",
    ],
)
def test_common_passwords(password: str) -> None:
    assert is_common_password(password)
    assert any("too common" in p for p in PasswordPolicy().problems(password))


def test_common_list_is_substantial() -> None:
    from employeevirtual.security.password_policy import _common_passwords

    words = _common_passwords()
    assert len(words) >= 300
    assert all(w == w.lower() for w in words)
    assert not is_common_password(GOOD)


def test_contains_email_local_part() -> None:
    problems = PasswordPolicy().problems("my-JaneDoe-secret!", email="janedoe@example.com")
    assert problems == ["Password must not contain your email address."]
    # Very short local parts would match by accident; they are ignored.
    assert PasswordPolicy().problems(GOOD, email="al@example.com") == []


def test_contains_name() -> None:
    problems = PasswordPolicy().problems("i-am-ROBERTA-2024", name="Roberta Smith")
    assert problems == ["Password must not contain your name."]
    assert PasswordPolicy().problems(GOOD, name="Li Wu") == []


def test_multiple_problems_reported() -> None:
    problems = PasswordPolicy().problems("admin", email="admin@example.com", name="Admin")
    assert len(problems) == 4


def test_invalid_policy() -> None:
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=20, max_length=10)
