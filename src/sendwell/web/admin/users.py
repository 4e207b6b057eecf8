"""Users (admins only): list, create, change role, language or password, disable — the same service as
`sendwell users`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from sendwell.access.users import LANGUAGES, ROLES, UserError, create_user, list_users, update_user
from sendwell.db.session import transaction
from sendwell.web.admin.pages import Admin, Viewer
from sendwell.web.admin.problems import said


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/users")

    async def only_admin(request: Request) -> Viewer:
        return await admin.require(request, "admin")

    def users_page(request: Request, user: Viewer, *, status: int = 200, error: str = "") -> Response:
        with transaction(admin.runtime.factory) as db:
            rows = list_users(db)
            db.expunge_all()
        return admin.render(request, "users.html", user, status=status, users=rows, roles=ROLES,
                            languages_all=LANGUAGES, error=error)

    @r.get("")
    def users(request: Request, user: Viewer = Depends(only_admin)) -> Response:
        return users_page(request, user)

    @r.post("")
    async def create(request: Request, user: Viewer = Depends(only_admin)) -> Response:
        form = await request.form()
        try:
            with transaction(admin.runtime.factory) as db:
                create_user(db, email=str(form.get("email", "")), password=str(form.get("password", "")),
                            role=str(form.get("role", "")), language=str(form.get("language", "en")))
        except UserError as exc:
            return users_page(request, user, status=400, error=said(exc))
        return RedirectResponse("/admin/users", status_code=303)

    @r.post("/{user_id}")
    async def change(request: Request, user_id: int, user: Viewer = Depends(only_admin)) -> Response:
        form = await request.form()
        role = str(form.get("role", "")) or None
        language = str(form.get("language", "")) or None
        password = str(form.get("password", ""))[:1000] or None  # empty: keep the current one
        disabled = {"disable": True, "enable": False}.get(str(form.get("state", "")))
        if user_id == user.id and (disabled or (role and role != "admin")):
            # Locking yourself out leaves nobody to undo it.
            return users_page(request, user, status=400, error="you cannot demote or disable yourself")
        try:
            with transaction(admin.runtime.factory) as db:
                update_user(db, user_id=user_id, role=role, language=language, password=password, disabled=disabled)
        except UserError as exc:
            return users_page(request, user, status=400, error=said(exc))
        return RedirectResponse("/admin/users", status_code=303)

    return r
