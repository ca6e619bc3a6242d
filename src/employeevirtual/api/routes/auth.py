from __future__ import annotations

from typing import Annotated

from fastapi import Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from employeevirtual.api.analytics_schemas import BudgetStatusOut, MeOut
from employeevirtual.api.deps import AccountsDep, ClientIP, CurrentUser, RuntimeDep
from employeevirtual.api.routing import Router
from employeevirtual.api.schemas import RegisterIn, SignupOut, TokenOut, UserOut

router = Router(tags=["auth"])


@router.post("/api/auth/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterIn, accounts: AccountsDep) -> UserOut:
    user = await accounts.register(email=body.email, password=body.password, name=body.name)
    return UserOut.of(user)


@router.get("/api/auth/signup")
async def signup(accounts: AccountsDep) -> SignupOut:
    """Whether anyone may sign up here (public: a sign-in page asks before offering it)."""
    return SignupOut(allowed=accounts.allow_signup)


@router.post("/api/auth/login")
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    runtime: RuntimeDep,
    ip: ClientIP,
) -> TokenOut:
    """OAuth2 password form: ``username`` is the email."""
    user = await runtime.accounts.authenticate(
        email=form.username, password=form.password, client_ip=ip
    )
    token, expires = runtime.tokens.issue(user.id)
    return TokenOut(access_token=token, expires_at=expires)


@router.get("/api/users/me")
async def me(user: CurrentUser, runtime: RuntimeDep) -> MeOut:
    """The caller, with their monthly budget (limits, used, remaining, reset time) if set."""
    budget = await runtime.budgets.for_user(user.id)
    return MeOut.model_validate(
        {
            **UserOut.of(user).model_dump(),
            "budget": None if budget is None else BudgetStatusOut.model_validate(budget),
        }
    )
