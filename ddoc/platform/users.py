"""People who decide: responders registered with their roles, and how Slack finds them.

A Slack user maps to a responder by an explicit `slack_user_id`, else by the e-mail Slack's
`users.info` reports (then the id is remembered). Nobody unregistered can decide anything.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ddoc.contracts.roles import Role
from ddoc.platform import audit
from ddoc.platform.errors import Conflict, Invalid
from ddoc.platform.ids import new_id
from ddoc.platform.tables import User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class UserError(Invalid):
    pass


class UserExists(Conflict):
    pass


def add(
    session: Session,
    *,
    tenant_id: str,
    email: str,
    display_name: str,
    roles: list[str],
    slack_user_id: str | None,
    actor: str,
) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError(f"not an e-mail address: {email!r}")
    if not display_name.strip():
        raise UserError("display_name is empty")
    known = {r.value for r in Role}
    unknown = sorted(set(roles) - known)
    if not roles or unknown:
        raise UserError(f"roles must be among {', '.join(sorted(known))}; got {roles}")
    if slack_user_id is not None and not _SLACK_ID.match(slack_user_id):
        raise UserError(f"not a Slack user id: {slack_user_id!r} (like U024BE7LH)")
    user = User(
        id=new_id("usr"),
        tenant_id=tenant_id,
        email=email,
        display_name=display_name.strip(),
        roles=sorted(set(roles)),
        slack_user_id=slack_user_id,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise UserExists(f"a user with e-mail {email} or that Slack id already exists") from None
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.created",
        subject=user.id,
        data={"email": email, "roles": user.roles, "slack_user_id": slack_user_id},
    )
    return user


def list_users(session: Session, *, tenant_id: str) -> list[User]:
    return list(
        session.exec(select(User).where(User.tenant_id == tenant_id).order_by(User.email)).all()
    )


def by_slack_id(session: Session, *, tenant_id: str, slack_user_id: str) -> User | None:
    return session.exec(
        select(User).where(User.tenant_id == tenant_id, User.slack_user_id == slack_user_id)
    ).first()


def link_slack_by_email(
    session: Session, *, tenant_id: str, email: str, slack_user_id: str
) -> User | None:
    """The user with this e-mail, now known by this Slack id too (None: not registered)."""
    user = session.exec(
        select(User).where(User.tenant_id == tenant_id, User.email == email.strip().lower())
    ).first()
    if user is None:
        return None
    if user.slack_user_id is None:
        user.slack_user_id = slack_user_id
        session.add(user)
    return user


def public(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "roles": user.roles,
        "slack_user_id": user.slack_user_id,
        "created_at": user.created_at,
    }
