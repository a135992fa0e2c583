"""Tables owned by the declaration service.

Instants are Float epoch seconds UTC (``*_at``); calendar days are ``Date``; months
(费款所属期, start and end of an enrolment) are ``'YYYY-MM'`` strings, which sort
chronologically; money is integer fen (``*_fen``), exact on both databases.

* ``units`` — the agency's registry of units for online service (``_units.py``).
* Master data, written only when a declaration is applied (DOMAIN §7):
  ``unit_profiles`` (§5.1 details and the unit's standing for V-UNIT-01), ``persons``
  (one row per person of the pool, by 18-character ID number, with the 个人编号
  assigned on approval), ``enrolments`` (one row per person, unit, insurance type
  and period, status AAC031 ``1``/``2``/``3`` as DOMAIN §8), ``contributions`` (the
  monthly ledger), ``injury_cases`` and ``injury_appraisals`` (工伤认定 and 鉴定).
* The intermediate store: ``declarations`` (payload and findings as JSON text),
  ``declaration_events`` (insert-only transitions), ``vouchers`` (办理凭证).
* ``unit_persons``: each person's roster status (and name) per unit, and
  ``unit_enrolment_counts``: enrolments per unit, insurance and status; both derived
  from ``enrolments`` by triggers (``_unit_persons.py``), never written by the
  application.
* ``number_sequences`` hands out 个人编号 and per-day voucher sequences.
* The ledger (issue 14): ``contribution_plans`` (per person, unit and insurance type:
  from which month, until which, on which base — written on approval),
  ``ledger_months`` (the closed 费款所属期, whose ``contributions`` lines are final) and
  ``contribution_adjustments`` (补缴/退费 of a closed month, insert-only).

Every constraint and index is named so migrations can refer to them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from declare_app._unit_persons import keep_current_on_create

metadata = MetaData()

DECLARATION_ID_LENGTH = 32
PERSON_NUMBER_LENGTH = 20
ACTOR_LENGTH = 128
INSURANCE_CODES = ("110", "210", "310", "410", "510")
_INSURANCE_CHECK = "insurance IN ('110', '210', '310', '410', '510')"

units = Table(
    "units",
    metadata,
    Column("code", String(8), nullable=False),  # 8-digit unit social-insurance code
    Column("region", String(6), nullable=False),
    Column("name", String(200), nullable=False),
    Column("credit_code", String(18), nullable=True),  # unified social credit code
    Column("status", String(16), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("registered_by", String(128), nullable=False),
    Column("approved_at", Float, nullable=True),
    Column("approved_by", String(128), nullable=True),
    PrimaryKeyConstraint("code", name="pk_units"),
    UniqueConstraint("credit_code", name="uq_units_credit_code"),
    CheckConstraint("status IN ('registered', 'approved')", name="ck_units_status"),
    Index("ix_units_region", "region"),
)

# §5.1 details of a unit.  A unit without a row has no details on record and normal
# standing.  ``standing`` and ``arrears`` are the agency's (V-UNIT-01), never declared.
unit_profiles = Table(
    "unit_profiles",
    metadata,
    Column("unit_code", String(8), nullable=False),
    Column("unit_type", String(32), nullable=True),  # 单位类型
    Column("registered_address", String(200), nullable=True),  # 注册地址
    Column("business_address", String(200), nullable=True),  # 经营地址
    Column("postcode", String(6), nullable=True),  # 邮政编码
    Column("industry_code", String(8), nullable=True),  # 行业代码 GB/T 4754
    Column("economic_type", String(32), nullable=True),  # 经济类型
    Column("affiliation", String(32), nullable=True),  # 隶属关系
    Column("admin_region", String(6), nullable=True),  # 所属行政区划
    Column("legal_rep_name", String(100), nullable=True),  # 法定代表人(负责人)
    Column("legal_rep_id", String(18), nullable=True),
    Column("agent_name", String(100), nullable=True),  # 社保专管员/经办人
    Column("agent_phone", String(32), nullable=True),
    Column("bank_name", String(100), nullable=True),  # 开户银行
    Column("bank_account_name", String(200), nullable=True),  # 户名
    Column("bank_account_no", String(40), nullable=True),  # 账号
    Column("injury_risk_class", Integer, nullable=True),  # 工伤行业风险类别 1-8
    Column("competent_dept", String(100), nullable=True),  # 主管部门
    Column("standing", String(16), nullable=False, server_default=text("'normal'")),
    Column("arrears", Boolean(create_constraint=False), nullable=False, server_default=false()),
    Column("updated_at", Float, nullable=False),
    Column("updated_by_declaration", String(DECLARATION_ID_LENGTH), nullable=True),
    PrimaryKeyConstraint("unit_code", name="pk_unit_profiles"),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_profiles_unit_code"),
    CheckConstraint(
        "standing IN ('normal', 'suspended', 'cancelled')", name="ck_unit_profiles_standing"
    ),
    CheckConstraint(
        "injury_risk_class IS NULL OR injury_risk_class BETWEEN 1 AND 8",
        name="ck_unit_profiles_injury_risk_class",
    ),
)

persons = Table(
    "persons",
    metadata,
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),  # 个人编号 aac001
    Column("id_number", String(18), nullable=False),  # 公民身份号码 aac002
    Column("id_type", String(2), nullable=False),  # 01 居民身份证, 02 居住证, 03 永居证
    Column("name", String(100), nullable=False),  # aac003
    Column("gender", String(1), nullable=False),  # aac004: 1 男, 2 女 (GB/T 2261.1)
    Column("birth_date", Date, nullable=False),  # aac006
    Column("nation", String(2), nullable=True),  # 民族, GB 3304 code
    Column("hukou_type", String(1), nullable=True),  # 户口性质 A 城镇 / B 农村
    Column("hukou_address", String(200), nullable=True),
    Column("staff_kind", String(1), nullable=False),  # 人员身份 A 干部 / B 工人
    Column("employment_form", String(1), nullable=True),  # 用工形式 code
    Column("work_start_month", String(7), nullable=True),  # 参加工作年月
    Column("phone", String(32), nullable=True),
    Column("address", String(200), nullable=True),
    Column("remark", String(500), nullable=True),
    Column("first_insured_month", String(7), nullable=True),  # aac049
    Column("retirement_override_month", String(7), nullable=True),  # "国家另有规定"
    Column(
        "receiving_pension",
        Boolean(create_constraint=False),
        nullable=False,
        server_default=false(),
    ),
    Column("terminal_reason", String(2), nullable=True),  # 31 退休, 32 死亡, 33 出国定居
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("created_by_declaration", String(DECLARATION_ID_LENGTH), nullable=True),
    PrimaryKeyConstraint("person_number", name="pk_persons"),
    UniqueConstraint("id_number", name="uq_persons_id_number"),
    CheckConstraint("gender IN ('1', '2')", name="ck_persons_gender"),
    CheckConstraint("staff_kind IN ('A', 'B')", name="ck_persons_staff_kind"),
    CheckConstraint("hukou_type IS NULL OR hukou_type IN ('A', 'B')", name="ck_persons_hukou_type"),
    CheckConstraint(
        "terminal_reason IS NULL OR terminal_reason IN ('31', '32', '33')",
        name="ck_persons_terminal_reason",
    ),
    # 单位到龄人员查询 (migration 0018): the persons born in the months whose statutory
    # retirement falls in the window, and the few with an override month.
    Index("ix_persons_birth_date", "birth_date", "gender", "staff_kind"),
    Index("ix_persons_retirement_override", "retirement_override_month"),
)

# One row per person, unit, insurance type and period of contribution.  A 续保 or
# 转入 opens a new row; a reduce closes the open one (status 2 暂停 or 3 终止,
# ``end_month`` = last month contributed).  The partial unique index makes "at most
# one open enrolment per person and insurance type in the whole pool" (V-DUP-01) hold
# even against two approvals racing on two nodes.
enrolments = Table(
    "enrolments",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("insurance", String(3), nullable=False),  # aae140
    Column("status", String(1), nullable=False),  # aac031
    Column("start_month", String(7), nullable=False),  # aac030
    Column("end_month", String(7), nullable=True),
    Column("base_fen", BigInteger, nullable=False),
    Column("base_year", Integer, nullable=True),  # year of the last 年度缴费基数申报
    Column("add_type", String(1), nullable=True),  # 增员类型 A-D
    Column("hire_date", Date, nullable=True),  # 本单位入职日期
    Column("stop_reason", String(2), nullable=True),  # §5.4 code; "C"+reason: 险种减少
    Column("opened_by", String(DECLARATION_ID_LENGTH), nullable=True),
    Column("closed_by", String(DECLARATION_ID_LENGTH), nullable=True),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_enrolments"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_enrolments_person_number"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_enrolments_unit_code"),
    CheckConstraint(_INSURANCE_CHECK, name="ck_enrolments_insurance"),
    CheckConstraint(
        "(status = '1' AND end_month IS NULL) OR (status IN ('2', '3') AND end_month IS NOT NULL)",
        name="ck_enrolments_status",
    ),
    CheckConstraint("base_fen >= 0", name="ck_enrolments_base"),
    Index("ix_enrolments_person_number", "person_number", "insurance"),
    Index("ix_enrolments_unit_code", "unit_code", "status"),
    # A page's persons' enrolments, and the unit_persons triggers' recomputation of one
    # (unit, person): an exact range, never the unit's whole enrolment set.
    Index("ix_enrolments_unit_person", "unit_code", "person_number"),
    # 单位基本信息's first month per insurance (one probe each), and the retirees of a
    # unit (a range of its retirement stops, never its every terminated enrolment).
    # Neither leads with unit_code: SQLite plans without statistics, and an index on
    # (unit_code, …) wider than ix_enrolments_unit_person made it drive the roster
    # export from the unit's enrolments and sort them all before the first row.
    Index("ix_enrolments_insurance_unit", "insurance", "unit_code", "start_month"),
    Index(
        "ix_enrolments_stop_unit",
        "stop_reason",
        "unit_code",
        "status",
        "person_number",
        "end_month",
    ),
    Index(
        "uq_enrolments_one_open",
        "person_number",
        "insurance",
        unique=True,
        sqlite_where=text("status = '1'"),
        postgresql_where=text("status = '1'"),
    ),
)

# Each person's standing in each unit, derived from ``enrolments`` and kept current by
# triggers on it (``_unit_persons.py``): ``status`` is the roster's AAC031 (1 while an
# enrolment in the unit is open, else 3 if one was terminated, else 2), ``start_month``
# the first month in the unit, ``name`` a copy of the person's (for the name search).
# A roster page or a count per status, with or without a name fragment, is one range
# of ``ix_unit_persons_status_name`` instead of a grouping of the unit's enrolments.
unit_persons = Table(
    "unit_persons",
    metadata,
    Column("unit_code", String(8), nullable=False),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("status", String(1), nullable=False),
    Column("start_month", String(7), nullable=False),
    Column("name", String(100), nullable=True),  # NULL only between 0017's steps
    PrimaryKeyConstraint("unit_code", "person_number", name="pk_unit_persons"),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_persons_unit_code"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_unit_persons_person_number"
    ),
    CheckConstraint("status IN ('1', '2', '3')", name="ck_unit_persons_status"),
    Index("ix_unit_persons_status_name", "unit_code", "status", "person_number", "name"),
    Index("ix_unit_persons_person", "person_number"),  # a new name, copied to its rows
)

# Enrolments per (unit, insurance, status), kept by the same triggers: 单位基本信息's
# persons contributing per insurance without counting the unit's enrolments.
unit_enrolment_counts = Table(
    "unit_enrolment_counts",
    metadata,
    Column("unit_code", String(8), nullable=False),
    Column("insurance", String(3), nullable=False),
    Column("status", String(1), nullable=False),
    Column("n", Integer, nullable=False),
    PrimaryKeyConstraint("unit_code", "insurance", "status", name="pk_unit_enrolment_counts"),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_enrolment_counts_unit_code"),
)

# Persons per (unit, AAC031 status), kept by triggers on unit_persons (migration 0018):
# the roster's counts per status without reading the unit's range of unit_persons.
unit_person_counts = Table(
    "unit_person_counts",
    metadata,
    Column("unit_code", String(8), nullable=False),
    Column("status", String(1), nullable=False),
    Column("n", Integer, nullable=False),
    PrimaryKeyConstraint("unit_code", "status", name="pk_unit_person_counts"),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_person_counts_unit_code"),
)
keep_current_on_create(metadata)

# The monthly ledger: what is due (and paid) per person, unit, insurance and month.
contributions = Table(
    "contributions",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("insurance", String(3), nullable=False),
    Column("month", String(7), nullable=False),  # 费款所属期 aae003
    Column("base_fen", BigInteger, nullable=False),
    Column("employer_fen", BigInteger, nullable=False),
    Column("employee_fen", BigInteger, nullable=False),
    Column("to_account_fen", BigInteger, nullable=False),  # 划入个人账户
    Column("status", String(8), nullable=False),
    Column("paid_on", Date, nullable=True),
    PrimaryKeyConstraint("id", name="pk_contributions"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_contributions_person_number"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_contributions_unit_code"),
    UniqueConstraint(
        "person_number", "unit_code", "insurance", "month", name="uq_contributions_line"
    ),
    CheckConstraint(_INSURANCE_CHECK, name="ck_contributions_insurance"),
    CheckConstraint("status IN ('due', 'paid')", name="ck_contributions_status"),
    Index("ix_contributions_unit_month", "unit_code", "month"),
    # 单位缴费: the unit's lines grouped by month and 险种 straight from the index, in
    # its order (covering: no table row read, no sort).
    Index(
        "ix_contributions_unit_ledger",
        "unit_code",
        "month",
        "insurance",
        "status",
        "base_fen",
        "employer_fen",
        "employee_fen",
        "paid_on",
    ),
)

# 单位缴费's sums per (unit, 费款所属期, 险种, line status, day paid), kept by triggers on
# contributions (migration 0018, declare_app/_unit_totals.py): the page's groups,
# totals and late fees read a few rows a month instead of every line of the unit.
# ``paid_on`` is 0001-01-01 for lines not paid (a key column cannot be NULL).
unit_ledger_totals = Table(
    "unit_ledger_totals",
    metadata,
    Column("unit_code", String(8), nullable=False),
    Column("month", String(7), nullable=False),
    Column("insurance", String(3), nullable=False),
    Column("status", String(8), nullable=False),
    Column("paid_on", Date, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("base_fen", BigInteger, nullable=False),
    Column("employer_fen", BigInteger, nullable=False),
    Column("employee_fen", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "unit_code", "month", "insurance", "status", "paid_on", name="pk_unit_ledger_totals"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_ledger_totals_unit_code"),
)

declarations = Table(
    "declarations",
    metadata,
    Column("id", String(DECLARATION_ID_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("previous_id", String(DECLARATION_ID_LENGTH), nullable=True),
    # Who or what the declaration is about (an ID number, ...), for V-DUP-03.
    Column("subject", String(64), nullable=True),
    Column("payload", Text, nullable=False),  # JSON, normalised
    Column("findings", Text, nullable=False),  # JSON list
    Column("result", Text, nullable=True),  # JSON: what applying it did
    Column("created_at", Float, nullable=False),
    Column("created_by", String(ACTOR_LENGTH), nullable=False),
    Column("created_session", String(128), nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("submitted_at", Float, nullable=True),
    Column("claimed_by", String(ACTOR_LENGTH), nullable=True),
    Column("claimed_at", Float, nullable=True),
    Column("decided_by", String(ACTOR_LENGTH), nullable=True),
    Column("decided_at", Float, nullable=True),
    Column("return_code", String(3), nullable=True),
    Column("return_text", String(500), nullable=True),
    Column("voucher_no", String(16), nullable=True),
    PrimaryKeyConstraint("id", name="pk_declarations"),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_declarations_unit_code"),
    ForeignKeyConstraint(["previous_id"], ["declarations.id"], name="fk_declarations_previous_id"),
    UniqueConstraint("previous_id", name="uq_declarations_previous_id"),
    UniqueConstraint("voucher_no", name="uq_declarations_voucher_no"),
    CheckConstraint(
        "type IN ('unit-change', 'person-add', 'insurance-add', 'insurance-reduce', "
        "'person-reduce', 'annual-base', 'injury-accident', 'injury-appraisal')",
        name="ck_declarations_type",
    ),
    CheckConstraint(
        "status IN ('draft', 'pending-review', 'under-review', 'returned', 'withdrawn', 'applied')",
        name="ck_declarations_status",
    ),
    CheckConstraint("version >= 1", name="ck_declarations_version"),
    Index("ix_declarations_unit_status", "unit_code", "status"),
    Index("ix_declarations_status_submitted", "status", "submitted_at"),
    Index("ix_declarations_subject", "subject"),
)

# Insert-only: one row per transition, oldest first by id.
declaration_events = Table(
    "declaration_events",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_name", String(ACTOR_LENGTH), nullable=False),
    Column("session_id", String(128), nullable=True),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("note", String(1000), nullable=True),
    PrimaryKeyConstraint("id", name="pk_declaration_events"),
    ForeignKeyConstraint(
        ["declaration_id"], ["declarations.id"], name="fk_declaration_events_declaration_id"
    ),
    CheckConstraint("actor_kind IN ('employer', 'staff')", name="ck_declaration_events_actor"),
    Index("ix_declaration_events_declaration_id", "declaration_id", "id"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("number", String(16), nullable=False),  # SB + YYYYMMDD + 6-digit day sequence
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("issued_by", String(ACTOR_LENGTH), nullable=False),
    PrimaryKeyConstraint("number", name="pk_vouchers"),
    UniqueConstraint("declaration_id", name="uq_vouchers_declaration_id"),
    ForeignKeyConstraint(
        ["declaration_id"], ["declarations.id"], name="fk_vouchers_declaration_id"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_vouchers_unit_code"),
    Index("ix_vouchers_unit_code", "unit_code"),
)

# 工伤认定决定: one row per decision of the 社会保险行政部门 on an accident or an
# occupational disease (工伤保险条例 Arts. 17, 20), recorded by staff as its own step
# after the application was accepted (``injury_applications``), or issued outside this
# system and cited by an appraisal (``issued_by`` names the body; no accident date).
injury_cases = Table(
    "injury_cases",
    metadata,
    Column("decision_no", String(32), nullable=False),  # 工伤认定决定书编号
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("accident_date", Date, nullable=True),
    Column("diagnosis_date", Date, nullable=True),
    Column("decided_on", Date, nullable=False),
    Column("late", Boolean(create_constraint=False), nullable=False, server_default=false()),
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=True),
    # recognised 认定为工伤 / not-recognised 不予认定; only a recognised case is appraised
    Column("outcome", String(16), nullable=False, server_default=text("'recognised'")),
    Column("issued_by", String(100), nullable=True),  # 作出决定的机构
    Column("application_no", String(32), nullable=True),  # the accepted application
    Column("recorded_by", String(ACTOR_LENGTH), nullable=True),
    Column("recorded_at", Float, nullable=True),
    PrimaryKeyConstraint("decision_no", name="pk_injury_cases"),
    CheckConstraint("outcome IN ('recognised', 'not-recognised')", name="ck_injury_cases_outcome"),
    UniqueConstraint("application_no", name="uq_injury_cases_application_no"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_injury_cases_person_number"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_injury_cases_unit_code"),
    Index("ix_injury_cases_person_number", "person_number"),
)

# 劳动能力鉴定 applications, and the committee's conclusion once it is known.
injury_appraisals = Table(
    "injury_appraisals",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("decision_no", String(32), nullable=False),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("kind", String(8), nullable=False),  # initial 初次 / again 再次 / review 复查
    Column("applied_on", Date, nullable=False),
    Column("conclusion_on", Date, nullable=True),
    Column("disability_grade", Integer, nullable=True),  # 1 (most severe) - 10
    Column("self_care_level", Integer, nullable=True),  # 1 完全, 2 大部分, 3 部分不能自理
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=True),
    PrimaryKeyConstraint("id", name="pk_injury_appraisals"),
    ForeignKeyConstraint(
        ["decision_no"], ["injury_cases.decision_no"], name="fk_injury_appraisals_decision_no"
    ),
    CheckConstraint("kind IN ('initial', 'again', 'review')", name="ck_injury_appraisals_kind"),
    CheckConstraint(
        "disability_grade IS NULL OR disability_grade BETWEEN 1 AND 10",
        name="ck_injury_appraisals_grade",
    ),
    CheckConstraint(
        "self_care_level IS NULL OR self_care_level BETWEEN 1 AND 3",
        name="ck_injury_appraisals_self_care",
    ),
    Index("ix_injury_appraisals_decision_no", "decision_no"),
)

number_sequences = Table(
    "number_sequences",
    metadata,
    Column("name", String(64), nullable=False),
    Column("last_value", BigInteger, nullable=False),
    PrimaryKeyConstraint("name", name="pk_number_sequences"),
    CheckConstraint("last_value >= 0", name="ck_number_sequences_last_value"),
)

# -- the ledger (issue 14; _ledger.py computes, _ledger_store.py writes) -----------------
# The contribution plan: per person, unit and insurance type, from which month until
# which month (NULL: still running) on which base.  Written on approval, in the same
# transaction as the apply; read by the monthly close.  Segments of one plan never
# overlap (the store replaces a plan's segments as one step).
contribution_plans = Table(
    "contribution_plans",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("insurance", String(3), nullable=False),
    Column("from_month", String(7), nullable=False),
    Column("until_month", String(7), nullable=True),
    Column("base_fen", BigInteger, nullable=False),
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=True),  # last changed by
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_contribution_plans"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_contribution_plans_person_number"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_contribution_plans_unit_code"),
    CheckConstraint(_INSURANCE_CHECK, name="ck_contribution_plans_insurance"),
    CheckConstraint(
        "until_month IS NULL OR until_month >= from_month", name="ck_contribution_plans_months"
    ),
    CheckConstraint("base_fen >= 0", name="ck_contribution_plans_base"),
    Index("ix_contribution_plans_person", "person_number", "unit_code", "insurance"),
    Index("ix_contribution_plans_months", "from_month", "until_month"),
)

# One row per closed 费款所属期: its ``contributions`` lines are final from then on.
ledger_months = Table(
    "ledger_months",
    metadata,
    Column("month", String(7), nullable=False),
    Column("closed_at", Float, nullable=False),
    Column("closed_by", String(ACTOR_LENGTH), nullable=False),
    Column("lines", Integer, nullable=False),
    PrimaryKeyConstraint("month", name="pk_ledger_months"),
)

# 补缴 / 退费 of a closed month, booked when a later approval changes what it owes;
# signed amounts (a refund is negative).  Insert-only.
contribution_adjustments = Table(
    "contribution_adjustments",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("insurance", String(3), nullable=False),
    Column("month", String(7), nullable=False),  # 费款所属期 adjusted
    Column("kind", String(8), nullable=False),
    Column("base_fen", BigInteger, nullable=False),  # the base now owed on (0: none)
    Column("employer_fen", BigInteger, nullable=False),
    Column("employee_fen", BigInteger, nullable=False),
    Column("to_account_fen", BigInteger, nullable=False),
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=True),
    Column("booked_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_contribution_adjustments"),
    ForeignKeyConstraint(
        ["person_number"],
        ["persons.person_number"],
        name="fk_contribution_adjustments_person_number",
    ),
    ForeignKeyConstraint(
        ["unit_code"], ["units.code"], name="fk_contribution_adjustments_unit_code"
    ),
    CheckConstraint(_INSURANCE_CHECK, name="ck_contribution_adjustments_insurance"),
    CheckConstraint("kind IN ('arrears', 'refund')", name="ck_contribution_adjustments_kind"),
    Index("ix_contribution_adjustments_unit_month", "unit_code", "month"),
    Index("ix_contribution_adjustments_person", "person_number", "insurance", "month"),
)

# Opening data from the old system (``ssgate declare import-legacy``, issue 14): the
# pension account balance at a year end (上年末累计储存额, the statement's opening
# balance of the next year) and the 视同缴费 months.  One row per person; insert-only.
legacy_accounts = Table(
    "legacy_accounts",
    metadata,
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("balance_date", Date, nullable=True),  # a 12-31: the balance's year end
    Column("balance_fen", BigInteger, nullable=True),
    Column("deemed_months", Integer, nullable=True),  # 视同缴费月数
    Column("import_id", String(32), nullable=False),
    Column("imported_at", Float, nullable=False),
    Column("imported_by", String(ACTOR_LENGTH), nullable=False),
    PrimaryKeyConstraint("person_number", name="pk_legacy_accounts"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_legacy_accounts_person_number"
    ),
    CheckConstraint(
        "(balance_date IS NULL) = (balance_fen IS NULL)", name="ck_legacy_accounts_balance"
    ),
    CheckConstraint("balance_fen IS NULL OR balance_fen >= 0", name="ck_legacy_accounts_amount"),
    CheckConstraint(
        "deemed_months IS NULL OR deemed_months BETWEEN 0 AND 1200",
        name="ck_legacy_accounts_deemed_months",
    ),
)

# -- evidence and the agency's own decisions (issue 14, defects 2, 7, 8) ----------------
# Uploaded evidence, one row per distinct content (by SHA-256): kept in the database
# rather than the state directory so that backups, restores and several nodes on one
# PostgreSQL see the same files with no second store to keep in step.  Insert-only.
evidence_blobs = Table(
    "evidence_blobs",
    metadata,
    Column("sha256", String(64), nullable=False),
    Column("media_type", String(32), nullable=False),  # from the content, never the client
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("stored_at", Float, nullable=False),
    PrimaryKeyConstraint("sha256", name="pk_evidence_blobs"),
    CheckConstraint(
        "media_type IN ('application/pdf', 'image/jpeg', 'image/png')",
        name="ck_evidence_blobs_media_type",
    ),
    CheckConstraint("size > 0", name="ck_evidence_blobs_size"),
)

# A declaration version's attachments.  A resubmission copies the rows to the new
# version (``carried_from``), so every version keeps the files it was decided on.
declaration_attachments = Table(
    "declaration_attachments",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("label", String(50), nullable=False),  # 材料名称, as the employer chose it
    Column("filename", String(200), nullable=False),  # as sent; shown, never trusted
    Column("uploaded_at", Float, nullable=False),
    Column("uploaded_by", String(ACTOR_LENGTH), nullable=False),
    Column("session_id", String(128), nullable=True),
    Column("carried_from", Integer, nullable=True),
    PrimaryKeyConstraint("id", name="pk_declaration_attachments"),
    ForeignKeyConstraint(
        ["declaration_id"], ["declarations.id"], name="fk_declaration_attachments_declaration_id"
    ),
    ForeignKeyConstraint(
        ["sha256"], ["evidence_blobs.sha256"], name="fk_declaration_attachments_sha256"
    ),
    Index("ix_declaration_attachments_declaration_id", "declaration_id", "id"),
)

# 工伤认定申请 accepted (受理) on approval of a 工伤事故申报; the decision follows as
# ``injury_cases`` (``decided`` then set).
injury_applications = Table(
    "injury_applications",
    metadata,
    Column("application_no", String(32), nullable=False),  # GSSL + voucher date and sequence
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=False),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("accident_date", Date, nullable=False),
    Column("diagnosis_date", Date, nullable=True),
    Column("accepted_on", Date, nullable=False),
    Column("late", Boolean(create_constraint=False), nullable=False, server_default=false()),
    Column("decision_no", String(32), nullable=True),
    PrimaryKeyConstraint("application_no", name="pk_injury_applications"),
    UniqueConstraint("declaration_id", name="uq_injury_applications_declaration_id"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_injury_applications_person_number"
    ),
    ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_injury_applications_unit_code"),
    Index("ix_injury_applications_person", "person_number", "accident_date"),
)

# 养老保险待遇核定: the agency's award of a pension, recorded by staff (never by a
# 人员减少 for retirement, which only ends the contributions).
pension_awards = Table(
    "pension_awards",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("from_month", String(7), nullable=False),  # 待遇开始年月
    Column("reference", String(64), nullable=False),  # 核定文号
    Column("declaration_id", String(DECLARATION_ID_LENGTH), nullable=True),  # the reduce
    Column("recorded_by", String(ACTOR_LENGTH), nullable=False),
    Column("recorded_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_pension_awards"),
    ForeignKeyConstraint(
        ["person_number"], ["persons.person_number"], name="fk_pension_awards_person_number"
    ),
    UniqueConstraint("person_number", name="uq_pension_awards_person_number"),
)
