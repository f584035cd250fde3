"""Scheduled jobs: one guard row per (job, business date), which is also the run's record."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base


class JobRun(Base):
    """A job's run for one business date. Unique per (job, business date): a second scheduler's
    insert finds the row and does not run the job again."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "business_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(60))
    business_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed
    runner: Mapped[str] = mapped_column(String(100))  # which scheduler process (pid and a random tag)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class SchedulerJob(Base):
    """APScheduler 3's SQLAlchemyJobStore table, created here so that no scheduler races to create it."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)


class ReconRun(Base):
    """The reconciliation of one municipality's business date; a rerun updates it."""

    __tablename__ = "recon_runs"
    __table_args__ = (UniqueConstraint("municipality_id", "business_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    business_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    runs: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
