"""Carrier provisioning: channel accounts, enrolment bundles, staff enrolment."""

from provisioning._bundle import BundleError, bundle_zip, qr_files, render_profile, write_bundle
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
    "BundleError",
    "Issued",
    "Provisioner",
    "ProvisioningInputError",
    "ProvisioningRefused",
    "ProvisioningSettings",
    "SessionHistory",
    "SessionSummary",
    "SessionTerminator",
    "UnitDirectory",
    "accounts_section",
    "bundle_zip",
    "qr_files",
    "render_profile",
    "write_bundle",
]
