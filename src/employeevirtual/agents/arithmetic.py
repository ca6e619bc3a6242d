"""Arithmetic on untrusted expressions, bounded: every intermediate integer stays under
``MAX_BITS``, refused before it is computed (estimated from the operands' bit lengths), so one
evaluation takes microseconds whatever the input. Imports nothing heavy: it is what the
isolated calculator process loads."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_BITS", "MAX_EXPRESSION", "TooLarge", "evaluate"]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
MAX_EXPRESSION = 200
# every intermediate integer stays under this many bits (about 1,200 digits): arithmetic on
# such numbers takes microseconds, so no expression can hold the GIL
MAX_BITS = 4096


class TooLarge(ValueError):
    pass


def _bits(value: float | int) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _check_size(op: ast.operator, left: float | int, right: float | int) -> None:
    """Refuse, before computing it, an operation whose integer result could pass MAX_BITS,
    estimated from the operands' bit lengths (an upper bound, so nothing big slips through)."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return  # float arithmetic is constant-time; overflow raises OverflowError
    a, b = _bits(left), _bits(right)
    if isinstance(op, ast.Add | ast.Sub):
        bound = max(a, b) + 1
    elif isinstance(op, ast.Mult):
        bound = a + b
    elif isinstance(op, ast.Pow):
        if right < 0 or abs(left) <= 1:
            return  # a float (bounded by float range), or 0, 1, -1 whatever the exponent
        # |left| >= 2: at least ``right`` bits; below that |left| ** right has fewer than
        # right * log2 |left| + 1 bits (an upper bound, close to the real size)
        bound = right if right > MAX_BITS else math.floor(right * math.log2(abs(left))) + 1
    else:  # / // %: no larger than the left operand
        bound = a
    if bound > MAX_BITS:
        raise TooLarge(
            f"the result would be too large (about {bound:,} bits; the limit is {MAX_BITS:,})"
        )


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value: float | int = node.value  # type: ignore[assignment]
        if _bits(value) > MAX_BITS:
            raise TooLarge(f"a number larger than {MAX_BITS:,} bits")
        return value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        _check_size(node.op, left, right)
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex):
            raise ValueError("the result is a complex number")
        return result  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    raise ValueError("only numbers, + - * / // % ** and parentheses are allowed")


def evaluate(expression: str) -> str:
    """The bounded evaluation, synchronous (microseconds for any accepted expression)."""
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"expression longer than {MAX_EXPRESSION} characters")
    return str(_evaluate(ast.parse(expression, mode="eval")))


if __name__ == "__main__":  # the calculator's isolated worker (agents/isolation.py)
    from employeevirtual.agents.isolation import serve_one

    serve_one(evaluate)
