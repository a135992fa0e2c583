"""The code lists of the declaration forms (DOMAIN.md §5, §7) and the ways dates are
written on them: one copy, which the rules check against, the web pages offer and the
staff console shows.

Each list is ``(code, label)`` pairs in the order a form offers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from declare_app._contributions import Insurance

Codes = tuple[tuple[str, str], ...]

GENDERS: Final[Codes] = (("1", "男"), ("2", "女"))  # GB/T 2261.1, as aac004
STAFF_KINDS: Final[Codes] = (("A", "干部"), ("B", "工人"))  # drives the retirement age (§3)
HUKOU_TYPES: Final[Codes] = (("A", "城镇"), ("B", "农村"))
# AAE140 险种 (§2.1); 120 is out of scope for enterprise units.
INSURANCES: Final[Codes] = tuple((i.value, i.label) for i in Insurance)

# 证件类型.  Only the first three carry an 18-character MOD 11-2 number (§1.1).
ID_TYPES: Final[Codes] = (
    ("01", "居民身份证"),
    ("02", "港澳台居民居住证"),
    ("03", "外国人永久居留身份证"),
    ("04", "护照"),
    ("05", "港澳居民来往内地通行证"),
    ("06", "台湾居民来往大陆通行证"),
)

# GB 3304 民族 codes 01-56, then 97 其他 and 98 外国血统中国籍人士.
# fmt: off
_NATION_NAMES: Final = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶",
    "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水",
    "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南",
    "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂",
    "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)
# fmt: on
NATIONS: Final[Codes] = (
    *((f"{i:02d}", name + "族") for i, name in enumerate(_NATION_NAMES, start=1)),
    ("97", "其他"),
    ("98", "外国血统中国籍人士"),
)

ADD_TYPES: Final[Codes] = (  # §5.2 增员类型
    ("A", "首次参保"),
    ("B", "本单位中断后续保"),
    ("C", "区外转入"),
    ("D", "区内转入"),
)
EMPLOYMENT_FORMS: Final[Codes] = (
    ("1", "劳动合同制（合同工）"),
    ("2", "劳务派遣"),
    ("3", "非全日制"),
    ("9", "其他"),
)

# §5.4, the suggested canonical reduce reasons; 31/32/33 terminate.
REDUCE_REASONS: Final[Codes] = (
    ("11", "解除/终止劳动合同"),
    ("12", "辞职"),
    ("13", "辞退/除名"),
    ("14", "合同到期终止"),
    ("21", "转出（区内）"),
    ("22", "转出（区外/跨省）"),
    ("31", "退休"),
    ("32", "死亡"),
    ("33", "出国（境）定居"),
    ("34", "参军"),
    ("35", "判刑收监"),
    ("41", "重复参保清理"),
    ("99", "其他"),
)

INSURANCE_CHANGE_REASONS: Final[Codes] = (  # §5.3
    ("1", "单位新增参保险种"),
    ("2", "超龄人员单险种参加工伤保险"),
    ("3", "补充登记遗漏险种"),
    ("4", "停止参加该险种"),
    ("9", "其他"),
)

UNIT_FIELDS: Final[Codes] = (  # §5.1, the registration form's items
    ("name", "单位名称"),
    ("credit_code", "统一社会信用代码"),
    ("unit_type", "单位类型"),
    ("registered_address", "注册地址"),
    ("business_address", "经营地址"),
    ("postcode", "邮政编码"),
    ("industry_code", "行业代码"),
    ("economic_type", "经济类型"),
    ("affiliation", "隶属关系"),
    ("admin_region", "所属行政区划"),
    ("legal_rep_name", "法定代表人（负责人）姓名"),
    ("legal_rep_id", "法定代表人（负责人）证件号码"),
    ("agent_name", "社保专管员（经办人）姓名"),
    ("agent_phone", "社保专管员（经办人）电话"),
    ("bank_name", "开户银行"),
    ("bank_account_name", "户名"),
    ("bank_account_no", "银行账号"),
    ("injury_risk_class", "工伤行业风险类别"),
    ("competent_dept", "主管部门"),
)

APPRAISAL_KINDS: Final[Codes] = (("1", "初次鉴定"), ("2", "再次鉴定"), ("3", "复查鉴定"))
APPLICANT_KINDS: Final[Codes] = (("1", "用人单位"), ("2", "工伤职工"), ("3", "职工近亲属"))

# §7: why a declaration came back; R99 needs text.
RETURN_REASONS: Final[Mapping[str, str]] = {
    "R01": "身份信息错误/与身份证不符",
    "R02": "15位身份证号未升级/证件类型不符",
    "R03": "重复参保/原单位未减员/转移手续未办结",
    "R04": "已达法定退休年龄或已享受待遇/实习生，不属参保范围",
    "R05": "缴费基数不符合规定或与工资不符",
    "R06": "参保/停保时间超出可办理期限或为未来日期",
    "R07": "材料不全/不清晰",
    "R08": "减员原因与事实/证明不符",
    "R09": "单位状态异常（注销/欠费/未年检/信息未同步）",
    "R10": "单位变更信息与登记证照不一致",
    "R11": "工伤申报材料不全/超期且无延期批准",
    "R12": "同一业务重复申报/当月已核定",
    "R13": "险种组合不合规（医疗/生育未同步，超龄人员非工伤险种）",
    "R99": "其他",
}
FREE_TEXT_REASON: Final = "R99"

# The ways dates and months are written on Chinese forms (stored as ISO text).
DATE_FORMS: Final = (
    re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
    re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"),
    re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日"),
)
MONTH_FORMS: Final = (
    re.compile(r"(\d{4})-(\d{1,2})"),
    re.compile(r"(\d{4})(\d{2})"),
    re.compile(r"(\d{4})/(\d{1,2})"),
    re.compile(r"(\d{4})\.(\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月"),
)
