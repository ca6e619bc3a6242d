"""``python -m tools.bench.steady [--turns N] [--rounds R]``: server CPU per steady turn, alone.

The quick A/B of a change to the turn's path: the plain bench server (production loop, no meters,
the stores ``EV_*`` names, an embedded default otherwise), one conversation warmed up by 30 turns,
then ``rounds`` blocks of ``turns`` sequential turns, each printed as the server's CPU per turn
(read from /proc, background jobs the turns started included) and the wall time per turn. Run it
in two checkouts one after the other, several times, on a quiet machine: the full bench
(``python -m tools.bench``) gives the figures against the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from uuid import UUID

from employeevirtual.settings import Settings
from tools.bench.run import BenchPlan, _Api, _client, _server, _stores
from tools.bench.server import INSTANT_MODEL

WARM_UP_TURNS = 30


async def steady(turns: int, rounds: int) -> list[tuple[float, float]]:
    """(server CPU ms, wall ms) per turn for each round."""
    out = []
    async with (
        _stores(Settings(), drop_schema=True) as stores,
        _server(stores, BenchPlan.quick(), plain=True) as served,
        _client(served.base) as client,
    ):
        api = _Api(client)
        await api.login()
        agent = await api.agent(INSTANT_MODEL, "steady")
        _, r = await api.turn(agent_id=agent)
        r.raise_for_status()
        conversation = UUID(r.json()["conversation_id"])
        for _ in range(WARM_UP_TURNS):
            _, r = await api.turn(conversation_id=conversation)
            r.raise_for_status()
        await served.settle()
        for _ in range(rounds):
            cpu, started = served.cpu_seconds(), time.perf_counter()
            for _ in range(turns):
                _, r = await api.turn(conversation_id=conversation)
                r.raise_for_status()
            wall = time.perf_counter() - started
            await asyncio.sleep(0.3)  # what the last turns started in the background
            out.append(((served.cpu_seconds() - cpu) / turns * 1000, wall / turns * 1000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.steady")
    parser.add_argument("--turns", type=int, default=300, help="turns per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for i, (cpu, wall) in enumerate(asyncio.run(steady(args.turns, args.rounds))):
        print(f"round {i}: server CPU {cpu:.2f} ms per turn, wall {wall:.2f} ms per turn")


if __name__ == "__main__":
    main()
