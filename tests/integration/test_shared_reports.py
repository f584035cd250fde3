"""A provider's report shared by wards: another ward's references are told by their own text.

A reference names its ward (`kk-<code>-<hex>`), so a ward's reconciliation and day close leave
out another ward's payments without reading any ward's rows; only references made before
(`kk-<hex>`) are looked up, across wards.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.identifiers import make_attempt_reference
from gateway.models import Municipality
from gateway.services.payments import other_wards_references
from gateway.services.reference import seed_reference_data
from tests.api.test_ward_isolation import A, B, _ward_b


def test_another_wards_references_are_known_by_their_code_and_old_ones_are_left_to_look_up(session: Session) -> None:
    seed_reference_data(session, [_ward_b()])
    ours = session.scalar(select(Municipality.id).where(Municipality.code == A))
    assert ours is not None
    own, theirs = make_attempt_reference(A), make_attempt_reference(B)
    nobody = make_attempt_reference("011002")  # a valid code of no ward of this service
    old = f"kk-{uuid.uuid4().hex}"

    others, unnamed = other_wards_references(session, ours, [own, theirs, nobody, old])

    assert others == {theirs}  # ward B's: left out of A's report
    assert unnamed == [old]  # made before references named their ward: looked up
    # A's own, and one naming no ward here (the provider's or a stranger's), stay in A's report.
    session.rollback()
