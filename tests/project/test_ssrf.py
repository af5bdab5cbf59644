"""The SSRF guard sees through IPv6 spellings that carry an IPv4 address (item 12 of the security probe)."""

import pytest

from jobs.models import Job
from pipeline_project.lib.ssrf import UnsafeURL, check_url, is_public_address

# IPv6 forms a translator, tunnel or the kernel may deliver to the IPv4 address inside them.
EMBEDDING_PRIVATE = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.1",
    "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
    "64:ff9b::127.0.0.1",  # NAT64 well-known prefix
    "64:ff9b::169.254.169.254",
    "64:ff9b::192.168.1.1",
    "64:ff9b:1::7f00:1",  # NAT64 local-use prefix: never globally reachable
    "64:ff9b:1:ffff::808:808",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:808:808::80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated), server 8.8.8.8
    "2001:0:7f00:1::f7f7:f7f7",  # Teredo, server 127.0.0.1
]
PUBLIC = ["8.8.8.8", "::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1", "2001:4860:4860::8888"]


@pytest.mark.parametrize("address", EMBEDDING_PRIVATE)
def test_ipv6_embedding_a_private_ipv4_is_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_and_their_ipv6_spellings_pass(address):
    assert is_public_address(address)


@pytest.mark.parametrize("address", EMBEDDING_PRIVATE)
def test_check_url_refuses_them_in_urls(address):
    with pytest.raises(UnsafeURL, match="non-public address"):
        check_url(f"http://[{address}]/x")


@pytest.mark.parametrize("address", PUBLIC)
def test_check_url_accepts_public_literals(address):
    host = f"[{address}]" if ":" in address else address
    assert check_url(f"https://{host}/x", require_resolvable=True)


def test_allowed_networks_apply_to_the_embedded_ipv4(settings):
    settings.SSRF_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert is_public_address("64:ff9b::10.1.2.3") and is_public_address("::ffff:10.1.2.3")
    assert not is_public_address("64:ff9b::127.0.0.1")


@pytest.mark.parametrize("address", ["::127.0.0.1", "64:ff9b::127.0.0.1", "2002:7f00:1::", "2001:0:808:808::80ff:fffe"])
def test_jobs_with_such_urls_are_refused_at_creation(as_member, address):
    response = as_member.post("/api/v1/jobs", {"source_type": "url", "source_uri": f"http://[{address}]/"},
                              format="json")  # fmt: skip
    assert response.status_code == 400 and "source_uri" in response.json()["error"]["details"]
    assert not Job.objects.exists()
