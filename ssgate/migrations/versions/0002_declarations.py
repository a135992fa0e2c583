"""declarations: master data (persons, enrolments, contributions, unit profiles, injury
cases and appraisals), the intermediate store (declarations, their history, vouchers),
number sequences

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "number_sequences",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("last_value >= 0", name="ck_number_sequences_last_value"),
        sa.PrimaryKeyConstraint("name", name="pk_number_sequences"),
    )
    op.create_table(
        "persons",
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("id_type", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("gender", sa.String(length=1), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("nation", sa.String(length=2), nullable=True),
        sa.Column("hukou_type", sa.String(length=1), nullable=True),
        sa.Column("hukou_address", sa.String(length=200), nullable=True),
        sa.Column("staff_kind", sa.String(length=1), nullable=False),
        sa.Column("employment_form", sa.String(length=1), nullable=True),
        sa.Column("work_start_month", sa.String(length=7), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("remark", sa.String(length=500), nullable=True),
        sa.Column("first_insured_month", sa.String(length=7), nullable=True),
        sa.Column("retirement_override_month", sa.String(length=7), nullable=True),
        sa.Column("receiving_pension", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("terminal_reason", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by_declaration", sa.String(length=32), nullable=True),
        sa.CheckConstraint("gender IN ('1', '2')", name="ck_persons_gender"),
        sa.CheckConstraint(
            "hukou_type IS NULL OR hukou_type IN ('A', 'B')", name="ck_persons_hukou_type"
        ),
        sa.CheckConstraint("staff_kind IN ('A', 'B')", name="ck_persons_staff_kind"),
        sa.CheckConstraint(
            "terminal_reason IS NULL OR terminal_reason IN ('31', '32', '33')",
            name="ck_persons_terminal_reason",
        ),
        sa.PrimaryKeyConstraint("person_number", name="pk_persons"),
        sa.UniqueConstraint("id_number", name="uq_persons_id_number"),
    )
    op.create_table(
        "contributions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("insurance", sa.String(length=3), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("employer_fen", sa.BigInteger(), nullable=False),
        sa.Column("employee_fen", sa.BigInteger(), nullable=False),
        sa.Column("to_account_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "insurance IN ('110', '210', '310', '410', '510')", name="ck_contributions_insurance"
        ),
        sa.CheckConstraint("status IN ('due', 'paid')", name="ck_contributions_status"),
        sa.ForeignKeyConstraint(
            ["person_number"], ["persons.person_number"], name="fk_contributions_person_number"
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_contributions_unit_code"),
        sa.PrimaryKeyConstraint("id", name="pk_contributions"),
        sa.UniqueConstraint(
            "person_number", "unit_code", "insurance", "month", name="uq_contributions_line"
        ),
    )
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.create_index("ix_contributions_unit_month", ["unit_code", "month"], unique=False)

    op.create_table(
        "declarations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.String(length=32), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_session", sa.String(length=128), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("return_code", sa.String(length=3), nullable=True),
        sa.Column("return_text", sa.String(length=500), nullable=True),
        sa.Column("voucher_no", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'pending-review', 'under-review', 'returned', 'withdrawn', 'applied')",
            name="ck_declarations_status",
        ),
        sa.CheckConstraint(
            "type IN ('unit-change', 'person-add', 'insurance-add', 'insurance-reduce', 'person-reduce', 'annual-base', 'injury-accident', 'injury-appraisal')",
            name="ck_declarations_type",
        ),
        sa.CheckConstraint("version >= 1", name="ck_declarations_version"),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["declarations.id"], name="fk_declarations_previous_id"
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_declarations_unit_code"),
        sa.PrimaryKeyConstraint("id", name="pk_declarations"),
        sa.UniqueConstraint("previous_id", name="uq_declarations_previous_id"),
        sa.UniqueConstraint("voucher_no", name="uq_declarations_voucher_no"),
    )
    with op.batch_alter_table("declarations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_declarations_status_submitted", ["status", "submitted_at"], unique=False
        )
        batch_op.create_index("ix_declarations_subject", ["subject"], unique=False)
        batch_op.create_index("ix_declarations_unit_status", ["unit_code", "status"], unique=False)

    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("insurance", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("start_month", sa.String(length=7), nullable=False),
        sa.Column("end_month", sa.String(length=7), nullable=True),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("base_year", sa.Integer(), nullable=True),
        sa.Column("add_type", sa.String(length=1), nullable=True),
        sa.Column("hire_date", sa.Date(), nullable=True),
        sa.Column("stop_reason", sa.String(length=2), nullable=True),
        sa.Column("opened_by", sa.String(length=32), nullable=True),
        sa.Column("closed_by", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "(status = '1' AND end_month IS NULL) OR (status IN ('2', '3') AND end_month IS NOT NULL)",
            name="ck_enrolments_status",
        ),
        sa.CheckConstraint(
            "insurance IN ('110', '210', '310', '410', '510')", name="ck_enrolments_insurance"
        ),
        sa.CheckConstraint("base_fen >= 0", name="ck_enrolments_base"),
        sa.ForeignKeyConstraint(
            ["person_number"], ["persons.person_number"], name="fk_enrolments_person_number"
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_enrolments_unit_code"),
        sa.PrimaryKeyConstraint("id", name="pk_enrolments"),
    )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_enrolments_person_number", ["person_number", "insurance"], unique=False
        )
        batch_op.create_index("ix_enrolments_unit_code", ["unit_code", "status"], unique=False)
        batch_op.create_index(
            "uq_enrolments_one_open",
            ["person_number", "insurance"],
            unique=True,
            sqlite_where=sa.text("status = '1'"),
            postgresql_where=sa.text("status = '1'"),
        )

    op.create_table(
        "injury_cases",
        sa.Column("decision_no", sa.String(length=32), nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("accident_date", sa.Date(), nullable=False),
        sa.Column("diagnosis_date", sa.Date(), nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_number"], ["persons.person_number"], name="fk_injury_cases_person_number"
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_injury_cases_unit_code"),
        sa.PrimaryKeyConstraint("decision_no", name="pk_injury_cases"),
    )
    with op.batch_alter_table("injury_cases", schema=None) as batch_op:
        batch_op.create_index("ix_injury_cases_person_number", ["person_number"], unique=False)

    op.create_table(
        "unit_profiles",
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("unit_type", sa.String(length=32), nullable=True),
        sa.Column("registered_address", sa.String(length=200), nullable=True),
        sa.Column("business_address", sa.String(length=200), nullable=True),
        sa.Column("postcode", sa.String(length=6), nullable=True),
        sa.Column("industry_code", sa.String(length=8), nullable=True),
        sa.Column("economic_type", sa.String(length=32), nullable=True),
        sa.Column("affiliation", sa.String(length=32), nullable=True),
        sa.Column("admin_region", sa.String(length=6), nullable=True),
        sa.Column("legal_rep_name", sa.String(length=100), nullable=True),
        sa.Column("legal_rep_id", sa.String(length=18), nullable=True),
        sa.Column("agent_name", sa.String(length=100), nullable=True),
        sa.Column("agent_phone", sa.String(length=32), nullable=True),
        sa.Column("bank_name", sa.String(length=100), nullable=True),
        sa.Column("bank_account_name", sa.String(length=200), nullable=True),
        sa.Column("bank_account_no", sa.String(length=40), nullable=True),
        sa.Column("injury_risk_class", sa.Integer(), nullable=True),
        sa.Column("competent_dept", sa.String(length=100), nullable=True),
        sa.Column(
            "standing", sa.String(length=16), server_default=sa.text("'normal'"), nullable=False
        ),
        sa.Column("arrears", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by_declaration", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "standing IN ('normal', 'suspended', 'cancelled')", name="ck_unit_profiles_standing"
        ),
        sa.CheckConstraint(
            "injury_risk_class IS NULL OR injury_risk_class BETWEEN 1 AND 8",
            name="ck_unit_profiles_injury_risk_class",
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_profiles_unit_code"),
        sa.PrimaryKeyConstraint("unit_code", name="pk_unit_profiles"),
    )
    op.create_table(
        "declaration_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_name", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=True),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.CheckConstraint(
            "actor_kind IN ('employer', 'staff')", name="ck_declaration_events_actor"
        ),
        sa.ForeignKeyConstraint(
            ["declaration_id"], ["declarations.id"], name="fk_declaration_events_declaration_id"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_declaration_events"),
    )
    with op.batch_alter_table("declaration_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_declaration_events_declaration_id", ["declaration_id", "id"], unique=False
        )

    op.create_table(
        "injury_appraisals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("decision_no", sa.String(length=32), nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("conclusion_on", sa.Date(), nullable=True),
        sa.Column("disability_grade", sa.Integer(), nullable=True),
        sa.Column("self_care_level", sa.Integer(), nullable=True),
        sa.Column("declaration_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "kind IN ('initial', 'again', 'review')", name="ck_injury_appraisals_kind"
        ),
        sa.CheckConstraint(
            "disability_grade IS NULL OR disability_grade BETWEEN 1 AND 10",
            name="ck_injury_appraisals_grade",
        ),
        sa.CheckConstraint(
            "self_care_level IS NULL OR self_care_level BETWEEN 1 AND 3",
            name="ck_injury_appraisals_self_care",
        ),
        sa.ForeignKeyConstraint(
            ["decision_no"], ["injury_cases.decision_no"], name="fk_injury_appraisals_decision_no"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_injury_appraisals"),
    )
    with op.batch_alter_table("injury_appraisals", schema=None) as batch_op:
        batch_op.create_index("ix_injury_appraisals_decision_no", ["decision_no"], unique=False)

    op.create_table(
        "vouchers",
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("issued_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["declaration_id"], ["declarations.id"], name="fk_vouchers_declaration_id"
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_vouchers_unit_code"),
        sa.PrimaryKeyConstraint("number", name="pk_vouchers"),
        sa.UniqueConstraint("declaration_id", name="uq_vouchers_declaration_id"),
    )
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_index("ix_vouchers_unit_code", ["unit_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_index("ix_vouchers_unit_code")

    op.drop_table("vouchers")
    with op.batch_alter_table("injury_appraisals", schema=None) as batch_op:
        batch_op.drop_index("ix_injury_appraisals_decision_no")

    op.drop_table("injury_appraisals")
    with op.batch_alter_table("declaration_events", schema=None) as batch_op:
        batch_op.drop_index("ix_declaration_events_declaration_id")

    op.drop_table("declaration_events")
    op.drop_table("unit_profiles")
    with op.batch_alter_table("injury_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_injury_cases_person_number")

    op.drop_table("injury_cases")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_enrolments_one_open",
            sqlite_where=sa.text("status = '1'"),
            postgresql_where=sa.text("status = '1'"),
        )
        batch_op.drop_index("ix_enrolments_unit_code")
        batch_op.drop_index("ix_enrolments_person_number")

    op.drop_table("enrolments")
    with op.batch_alter_table("declarations", schema=None) as batch_op:
        batch_op.drop_index("ix_declarations_unit_status")
        batch_op.drop_index("ix_declarations_subject")
        batch_op.drop_index("ix_declarations_status_submitted")

    op.drop_table("declarations")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index("ix_contributions_unit_month")

    op.drop_table("contributions")
    op.drop_table("persons")
    op.drop_table("number_sequences")
