"""Registry client (OCI distribution spec): push and pull images and artifacts; stdlib HTTP only."""

from minibuild.registry.auth import Challenge, Credentials, lookup_credentials, parse_challenges
from minibuild.registry.client import FetchedManifest, ProgressFn, RegistryClient, TransferEvent
from minibuild.registry.transfer import (
    PullResult,
    PushResult,
    choose_manifest,
    download_blob,
    parse_platform,
    pull,
    pull_artifact,
    pull_image,
    push_artifact,
    push_blobs,
    push_image,
)
from minibuild.registry.transport import RegistryOptions, is_insecure, options_from_env

__all__ = ["Challenge", "Credentials", "FetchedManifest", "ProgressFn", "PullResult", "PushResult", "RegistryClient",
           "RegistryOptions", "TransferEvent", "choose_manifest", "download_blob", "is_insecure", "lookup_credentials",
           "options_from_env", "parse_challenges", "parse_platform", "pull", "pull_artifact", "pull_image",
           "push_artifact", "push_blobs", "push_image"]
