"""Carrier provisioning: channel accounts, enrolment bundles, staff enrolment."""

from provisioning._bundle import BundleError, qr_files, render_profile, write_bundle
from provisioning._workflows import (
    AccountView,
    Issued,
    Provisioner,
    ProvisioningInputError,
    ProvisioningRefused,
    ProvisioningSettings,
)
from provisioning.interfaces import SessionTerminator, UnitDirectory

__all__ = [
    "AccountView",
    "BundleError",
    "Issued",
    "Provisioner",
    "ProvisioningInputError",
    "ProvisioningRefused",
    "ProvisioningSettings",
    "SessionTerminator",
    "UnitDirectory",
    "qr_files",
    "render_profile",
    "write_bundle",
]
