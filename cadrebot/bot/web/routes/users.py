"""Users (admins only, checked by the accounts desk): create cadre and admin accounts,
reset passwords, deactivate and reactivate; the audit trail beside them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import StaffDep, WebDep
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import csrf_protect
from cadrebot.handlers.accounts import AccountError
from cadrebot.handlers.masking import mask_sensitive

router = APIRouter(dependencies=[Depends(csrf_protect)])

_DONE = {
    "created": "账号已创建。",
    "reset": "密码已重置，该账号的登录已全部退出。",
    "disabled": "账号已停用，该账号的登录已全部退出。",
    "enabled": "账号已恢复启用。",
}


async def _users_page(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    *,
    error: str | None = None,
    done: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    accounts = web.stack.accounts
    listed = await run_in_threadpool(accounts.list_accounts, staff.user)
    trail = await run_in_threadpool(accounts.audit_trail, staff.user, 30)
    context = {
        "accounts": listed,
        "trail": trail,
        "error": error,
        "done": _DONE.get(done or ""),
        "form": form or {},
    }
    return render(request, "users/list.html", context, status_code=status_code)


@router.get("/users")
async def users_page(
    request: Request, web: WebDep, staff: StaffDep, done: str | None = None
) -> Response:
    return await _users_page(request, web, staff, done=done)


@router.post("/users")
async def create_user(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=500)] = "",
    role: Annotated[str, Form(max_length=20)] = "cadre",
    township: Annotated[str, Form(max_length=100)] = "",
    village: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        await run_in_threadpool(
            lambda: web.stack.accounts.create(
                staff.user,
                username,
                password,
                role,
                township=township or None,
                village=village or None,
            )
        )
    except AccountError as refusal:
        # The form is shown again with what was typed (masked: never an ID number in full),
        # except the password.
        typed = {"username": username, "township": township, "village": village}
        form = {name: mask_sensitive(value) for name, value in typed.items()} | {"role": role}
        return await _users_page(
            request, web, staff, error=refusal.message, form=form, status_code=400
        )
    return RedirectResponse("/users?done=created", status_code=303)


@router.post("/users/{username}/password")
async def reset_password(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    username: str,
    password: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        await run_in_threadpool(web.stack.accounts.reset_password, staff.user, username, password)
    except AccountError as refusal:
        return await _users_page(request, web, staff, error=refusal.message, status_code=400)
    return RedirectResponse("/users?done=reset", status_code=303)


@router.post("/users/{username}/disable")
async def disable(request: Request, web: WebDep, staff: StaffDep, username: str) -> Response:
    try:
        await run_in_threadpool(web.stack.accounts.set_active, staff.user, username, False)
    except AccountError as refusal:
        return await _users_page(request, web, staff, error=refusal.message, status_code=400)
    return RedirectResponse("/users?done=disabled", status_code=303)


@router.post("/users/{username}/enable")
async def enable(request: Request, web: WebDep, staff: StaffDep, username: str) -> Response:
    await run_in_threadpool(web.stack.accounts.set_active, staff.user, username, True)
    return RedirectResponse("/users?done=enabled", status_code=303)
