"""Search: relevance on a small bilingual set, owner scoping, deletion, filters, paging."""

from __future__ import annotations

import httpx
import pytest

from employeevirtual.runtime import Runtime
from support.access import account, audit_rows
from support.api import create_agent

BILINGUAL = [
    "Precisamos revisar o orçamento da campanha de marketing até sexta",
    "The budget review meeting moved to Friday; budget owners must attend",
    "A reunião sobre a ação judicial foi adiada para março",
    "Meus gatos dormem o dia inteiro",
    "We are hiring two engineers for the payments team",
    "Os relatórios trimestrais estão prontos para revisão",
]


async def _say(client: httpx.AsyncClient, headers: dict[str, str], agent_id: str, text: str) -> str:
    r = await client.post(
        "/api/chat/agent", json={"message": text, "agent_id": agent_id}, headers=headers
    )
    assert r.status_code == 200, r.text
    return str(r.json()["conversation_id"])


async def _search(
    client: httpx.AsyncClient, headers: dict[str, str], q: str, **params: str
) -> httpx.Response:
    return await client.get("/api/search", params={"q": q, **params}, headers=headers)


def _texts(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [item["snippet"] for item in r.json()["items"]]


async def _seed(client: httpx.AsyncClient) -> tuple[object, str, dict[int, str]]:
    owner = await account(client, name="Olga")
    agent = await create_agent(client, owner.headers)
    conversations = {
        i: await _say(client, owner.headers, agent["id"], t) for i, t in enumerate(BILINGUAL)
    }
    return owner, agent["id"], conversations


async def test_relevance_accents_and_stemming(client: httpx.AsyncClient, backend: str) -> None:
    owner, _agent, conv = await _seed(client)
    h = owner.headers  # type: ignore[attr-defined]
    user = {"message_type": "user"}

    # accents folded both ways: 'orcamento' finds 'orçamento', 'acao' finds 'ação'
    r = await _search(client, h, "orcamento", **user)
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[0]]
    r = await _search(client, h, "ação judicial", **user)
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[2]]
    r = await _search(client, h, "ACAO", **user)
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[2]]

    # English stemming: 'meetings' finds 'meeting', 'engineer' finds 'engineers'
    r = await _search(client, h, "meetings", **user)
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[1]]
    r = await _search(client, h, "engineer", **user)
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[4]]

    # prefix: 'relat*' finds 'relatórios'
    r = await _search(client, h, "relat*", **user)
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[5]]

    # Portuguese stemming where the engine has it (PostgreSQL's snowball): 'gato' finds 'gatos'
    if backend == "postgres":
        r = await _search(client, h, "gato", **user)
        assert [i["conversation_id"] for i in r.json()["items"]] == [conv[3]]

    # ranking: the message saying 'budget' twice comes before the agent's echo, which quotes it
    # inside a longer reply (same term count, longer text: length normalization must decide,
    # not the row id)
    r = await _search(client, h, "budget")
    items = r.json()["items"]
    assert items[0]["message_type"] == "user" and items[0]["conversation_id"] == conv[1]
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)

    # highlights are offsets into a plain snippet
    first = items[0]
    marked = [first["snippet"][a:b].lower() for a, b in first["highlights"]]
    assert marked and all(m == "budget" for m in marked)
    assert first["seq"] == 1 and first["message_id"]

    # no match, no hits; words only: engine syntax in q is just a separator
    assert _texts(await _search(client, h, "zebra")) == []
    r = await _search(client, h, 'budget" OR "x NEAR(')
    assert r.status_code == 200
    r = await _search(client, h, '"*()')
    assert r.status_code == 422 and "word" in r.text


async def test_owner_scoping_and_admin_search_is_audited(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await account(client, name="Admin")
    owner, _agent, conv = await _seed(client)
    other = await account(client, name="Otto")
    other_agent = await create_agent(client, other.headers)
    await _say(client, other.headers, other_agent["id"], "my own orçamento notes")

    r = await _search(client, other.headers, "orcamento", message_type="user")
    assert [i["snippet"] for i in r.json()["items"]] == ["my own orçamento notes"]
    # another user's id: refused for a user, audited for an admin
    r = await _search(client, other.headers, "orcamento", user_id=owner.id)  # type: ignore[attr-defined]
    assert r.status_code == 403
    before = len(await audit_rows(runtime, "search.admin"))
    r = await _search(
        client,
        admin.headers,
        "orcamento",
        user_id=owner.id,
        message_type="user",  # type: ignore[attr-defined]
    )
    assert [i["conversation_id"] for i in r.json()["items"]] == [conv[0]]
    rows = await audit_rows(runtime, "search.admin")
    assert len(rows) == before + 1 and rows[-1]["target_id"] == owner.id  # type: ignore[attr-defined]
    # the admin's own search sees only the admin's data
    assert _texts(await _search(client, admin.headers, "orcamento")) == []


async def test_deleted_conversation_is_unsearchable_at_once(client: httpx.AsyncClient) -> None:
    owner, _agent, conv = await _seed(client)
    h = owner.headers  # type: ignore[attr-defined]
    r = await _search(client, h, "gatos")
    assert {i["conversation_id"] for i in r.json()["items"]} == {conv[3]}
    r = await client.delete(f"/api/conversations/{conv[3]}", headers=h)
    assert r.status_code == 204
    assert _texts(await _search(client, h, "gatos")) == []


async def test_titles_filters_and_cursor_pages(client: httpx.AsyncClient) -> None:
    owner = await account(client, name="Olga")
    h = owner.headers
    a1 = await create_agent(client, h, name="Vendas")
    a2 = await create_agent(client, h, name="Suporte")
    ids = [
        await _say(client, h, a["id"], f"relatório número {n}") for n, a in enumerate([a1, a2] * 4)
    ]
    r = await client.patch(
        f"/api/conversations/{ids[0]}", json={"title": "Relatório anual"}, headers=h
    )
    assert r.status_code == 200
    r = await _search(client, h, "anual")
    assert [(i["kind"], i["conversation_id"]) for i in r.json()["items"]] == [
        ("conversation", ids[0])
    ]
    # agent and type filters
    r = await _search(client, h, "relatorio", agent_id=a2["id"], message_type="user", limit="100")
    assert sorted(i["conversation_id"] for i in r.json()["items"]) == sorted(ids[1::2])
    # pages of 3 cover every hit exactly once, in score order
    everything = (await _search(client, h, "relatorio", limit="100")).json()["items"]
    seen: list[tuple[str, str | None]] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await _search(client, h, "relatorio", **params)).json()
        seen += [(i["conversation_id"], i["message_id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(i["conversation_id"], i["message_id"]) for i in everything]
    assert len(seen) == len(set(seen)) == 8 * 2 + 1
    # dates: nothing created before the epoch
    r = await _search(client, h, "relatorio", created_before="2000-01-01T00:00:00Z")
    assert _texts(r) == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"q": "a" * 201}, "q"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "cursor": "!!"}, "cursor"),
        ({"q": "x", "created_after": "2026-01-01T00:00:00"}, "timezone"),
        ({"q": "x", "message_type": "robot"}, "message_type"),
    ],
)
async def test_bad_input_is_a_clear_422(
    client: httpx.AsyncClient, params: dict[str, str], fragment: str
) -> None:
    owner = await account(client, name="Olga")
    r = await client.get("/api/search", params=params, headers=owner.headers)
    assert r.status_code == 422, r.text
    assert fragment in r.text
