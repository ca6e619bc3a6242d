"""The product hashes passwords with OWASP's Argon2id parameters (m=19 MiB, t=2, p=1).

The apps the tests run in process use cheaper ones (tests/conftest.py), so the product's own are
checked here in a fresh interpreter, which never imports the tests' conftest."""

from __future__ import annotations

import asyncio
import sys

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from employeevirtual.security import passwords

_PROGRAM = """
from employeevirtual.security.passwords import hash_password, verify_password
made = hash_password("correct horse")
print(made.split("$")[1:4])
print(verify_password("correct horse", made), verify_password("wrong", made))
"""


async def test_the_product_hashes_with_owasps_parameters() -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PROGRAM, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    assert out.decode().splitlines() == ["['argon2id', 'v=19', 'm=19456,t=2,p=1']", "True False"]


def test_a_hash_made_with_the_products_parameters_verifies_in_process() -> None:
    """Hashes record their parameters: a user a server process created (product parameters)
    logs in through an app in the test process too."""
    product = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1),))
    made = product.hash("pw")
    assert made.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password("pw", made)
    assert not passwords.verify_password("other", made)
