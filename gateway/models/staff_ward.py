"""The wards a service administrator holds besides their home ward (staff_users.municipality_id)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, ForeignKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base

GRANTABLE_ROLE = "administrator"  # the only role that may hold more than its home ward


class StaffWard(Base):
    """A ward granted to an administrator of the service, besides their home ward.

    The grant carries the user's role, referenced together with the user's id: the database
    refuses a grant to any other role, and a change of role while the user holds a ward.
    """

    __tablename__ = "staff_wards"
    __table_args__ = (
        ForeignKeyConstraint(["user_id", "role"], ["staff_users.id", "staff_users.role"],
                             name="fk_staff_wards_user_id_role_staff_users"),
        CheckConstraint(f"role = '{GRANTABLE_ROLE}'", name="administrator_only"),
    )

    user_id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(30), default=GRANTABLE_ROLE)
    granted_by: Mapped[str] = mapped_column(String(100))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
