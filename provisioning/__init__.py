"""Carrier provisioning: channel accounts and their enrolment bundles.

Staff enrolment moved to ``staffing`` (the administrator's workflows), which writes
its OTP files with the bundle functions exported here.
"""

from provisioning._audited import AuditedWorkflows, BundleTransaction, WorkflowRefused
from provisioning._bundle import (
    BundleError,
    bundle_zip,
    check_bundle_dir,
    qr_files,
    remove_bundle,
    render_profile,
    write_bundle,
)
from provisioning._pages import accounts_section
from provisioning._workflows import (
    AccountView,
    Issued,
    Provisioner,
    ProvisioningInputError,
    ProvisioningRefused,
    ProvisioningSettings,
)
from provisioning.interfaces import (
    SessionHistory,
    SessionSummary,
    SessionTerminator,
    UnitDirectory,
)

__all__ = [
    "AccountView",
    "AuditedWorkflows",
    "BundleError",
    "BundleTransaction",
    "Issued",
    "Provisioner",
    "ProvisioningInputError",
    "ProvisioningRefused",
    "ProvisioningSettings",
    "SessionHistory",
    "SessionSummary",
    "SessionTerminator",
    "UnitDirectory",
    "WorkflowRefused",
    "accounts_section",
    "bundle_zip",
    "check_bundle_dir",
    "qr_files",
    "remove_bundle",
    "render_profile",
    "write_bundle",
]
