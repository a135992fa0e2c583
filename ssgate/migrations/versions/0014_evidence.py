"""evidence: uploaded evidence (blobs by SHA-256, attachments per declaration
version), 工伤认定申请 accepted on approval with the decision recorded later
(injury_cases gains outcome, issuing body, application and who recorded it; the
accident date of a decision issued outside this system may be unknown), and the
agency's pension awards (issue 14, defects 2, 7, 8)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "media_type IN ('application/pdf', 'image/jpeg', 'image/png')",
            name="ck_evidence_blobs_media_type",
        ),
        sa.CheckConstraint("size > 0", name="ck_evidence_blobs_size"),
        sa.PrimaryKeyConstraint("sha256", name="pk_evidence_blobs"),
    )
    op.create_table(
        "declaration_attachments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", sa.Float(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=True),
        sa.Column("carried_from", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["declaration_id"],
            ["declarations.id"],
            name="fk_declaration_attachments_declaration_id",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["evidence_blobs.sha256"], name="fk_declaration_attachments_sha256"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_declaration_attachments"),
    )
    with op.batch_alter_table("declaration_attachments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_declaration_attachments_declaration_id", ["declaration_id", "id"], unique=False
        )
    op.create_table(
        "injury_applications",
        sa.Column("application_no", sa.String(length=32), nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("accident_date", sa.Date(), nullable=False),
        sa.Column("diagnosis_date", sa.Date(), nullable=True),
        sa.Column("accepted_on", sa.Date(), nullable=False),
        sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("decision_no", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_number"],
            ["persons.person_number"],
            name="fk_injury_applications_person_number",
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name="fk_injury_applications_unit_code"
        ),
        sa.PrimaryKeyConstraint("application_no", name="pk_injury_applications"),
        sa.UniqueConstraint("declaration_id", name="uq_injury_applications_declaration_id"),
    )
    with op.batch_alter_table("injury_applications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_injury_applications_person", ["person_number", "accident_date"], unique=False
        )
    op.create_table(
        "pension_awards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("from_month", sa.String(length=7), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=True),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_number"], ["persons.person_number"], name="fk_pension_awards_person_number"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pension_awards"),
        sa.UniqueConstraint("person_number", name="uq_pension_awards_person_number"),
    )
    with op.batch_alter_table("injury_cases", schema=None) as batch_op:
        batch_op.alter_column("accident_date", existing_type=sa.Date(), nullable=True)
        batch_op.add_column(
            sa.Column(
                "outcome",
                sa.String(length=16),
                server_default=sa.text("'recognised'"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("issued_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("application_no", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("recorded_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("recorded_at", sa.Float(), nullable=True))
        batch_op.create_check_constraint(
            "ck_injury_cases_outcome", "outcome IN ('recognised', 'not-recognised')"
        )
        batch_op.create_unique_constraint("uq_injury_cases_application_no", ["application_no"])


def downgrade() -> None:
    with op.batch_alter_table("injury_cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_injury_cases_application_no", type_="unique")
        batch_op.drop_constraint("ck_injury_cases_outcome", type_="check")
        for name in ("recorded_at", "recorded_by", "application_no", "issued_by", "outcome"):
            batch_op.drop_column(name)
        batch_op.alter_column("accident_date", existing_type=sa.Date(), nullable=False)
    op.drop_table("pension_awards")
    with op.batch_alter_table("injury_applications", schema=None) as batch_op:
        batch_op.drop_index("ix_injury_applications_person")
    op.drop_table("injury_applications")
    with op.batch_alter_table("declaration_attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_declaration_attachments_declaration_id")
    op.drop_table("declaration_attachments")
    op.drop_table("evidence_blobs")
