"""The URL whitelist: host matching at label boundaries, odd URLs, files."""

from __future__ import annotations

from pathlib import Path

import pytest

from vt_dagster.whitelist import UrlWhitelist, WhitelistError, host_of


@pytest.fixture(scope="module")
def default() -> UrlWhitelist:
    return UrlWhitelist.default()


@pytest.mark.parametrize(
    ("url", "whitelisted"),
    [
        # the entry itself, any case, any scheme, path/query/fragment
        ("http://crl.microsoft.com/pki/crl/products/MicCodSigPCA.crl", True),
        ("http://CRL.Microsoft.COM/x", True),
        ("HTTPS://crl.microsoft.com?x=1#frag", True),
        # subdomains at a label boundary
        ("http://a.crl.microsoft.com/", True),
        ("http://x.y.crl.microsoft.com/z", True),
        # look-alikes are kept
        ("http://crl.microsoft.com.evil.tld/", False),
        ("http://evilcrl.microsoft.com/", False),
        ("http://crl-microsoft.com/", False),
        ("http://microsoft.com/", False),
        ("http://evil.tld/crl.microsoft.com/", False),
        ("http://evil.tld/?u=http://crl.microsoft.com/", False),
        ("http://crl.microsoft.com@evil.tld/", False),
        # ports, userinfo, trailing dot
        ("http://crl.microsoft.com:80/x", True),
        ("http://crl.microsoft.com:8080", True),
        ("http://user:secret@crl.microsoft.com/x", True),
        ("http://user@CRL.microsoft.com.:443/x", True),
        ("http://crl.microsoft.com./", True),
        ("http://evil.tld:80@crl.microsoft.com/", True),
        # scheme-less and protocol-relative
        ("crl.microsoft.com/pki", True),
        ("crl.microsoft.com", True),
        ("crl.microsoft.com:80/pki", True),
        ("//crl.microsoft.com/pki", True),
        ("  http://crl.microsoft.com/  ", True),
        ("evil.tld/crl.microsoft.com", False),
        ("example.com/redirect?to=http://crl.microsoft.com/", False),
        # hosts of the other groups
        ("http://schemas.openxmlformats.org/drawingml/2006/main", True),
        ("http://www.w3.org/2001/XMLSchema", True),
        ("http://ocsp.pki.goog/gts1c3", True),
        ("http://r3.o.lencr.org", True),
        ("https://www.google.com/", True),
        # user-content hosts of the same platforms are never whitelisted
        ("https://drive.google.com/uc?id=1abc&export=download", False),
        ("https://google.com.evil.tld/", False),
        ("https://docs.google.com/document/d/x", False),
        ("https://raw.githubusercontent.com/a/b/main/payload.ps1", False),
        ("https://github.com/a/b/releases/download/v1/x.exe", False),
        ("https://pastebin.com/raw/abcd", False),
        ("https://cdn.discordapp.com/attachments/1/2/x.exe", False),
        ("https://www.dropbox.com/s/x/y.zip?dl=1", False),
        ("https://dl.dropboxusercontent.com/s/x/y.zip", False),
        ("https://api.telegram.org/bot123/sendMessage", False),
        ("http://api.ipify.org/", False),
    ],
)
def test_default_whitelist_matches_hosts(
    default: UrlWhitelist, url: str, whitelisted: bool
) -> None:
    assert default.is_whitelisted(url) is whitelisted


@pytest.mark.parametrize(
    "garbage",
    [
        "", "   ", "http://", "://", "http://[::1", "http://[not-ipv6]/", "http:///path",
        "http://a b.com/", "ht!tp://crl.microsoft.com/", "\x00\x01", "%%%%", "[]", "@",
        "javascript:alert(1)", "http://crl.microsoft.com:notaport\x00/", "http://..../",
        "http://" + "a" * 70 + ".crl..microsoft.com/", "x" * 100_000, "http://\udcff/",
    ],
)
def test_garbage_never_raises(default: UrlWhitelist, garbage: str) -> None:
    assert isinstance(default.is_whitelisted(garbage), bool)


@pytest.mark.parametrize(
    "garbage", ["", "   ", "http://", "http://[::1", "http://a b.com/", "\x00", "not a url at all"]
)
def test_garbage_is_kept(default: UrlWhitelist, garbage: str) -> None:
    assert default.is_whitelisted(garbage) is False
    assert default.filter([garbage]) == ([garbage], 0)


@pytest.mark.parametrize("value", [None, 42, 4.2, b"http://crl.microsoft.com/", ["x"], {"u": 1}])
def test_non_strings_are_never_whitelisted(default: UrlWhitelist, value: object) -> None:
    assert default.is_whitelisted(value) is False  # type: ignore[arg-type]


def test_ip_literals_match_exactly() -> None:
    whitelist = UrlWhitelist(["192.0.2.1", "[2001:db8::1]", "2001:db8::2", "example.com"])
    assert whitelist.is_whitelisted("http://192.0.2.1/x")
    assert whitelist.is_whitelisted("http://192.0.2.1:8080/x")
    assert whitelist.is_whitelisted("192.0.2.1/x")
    assert not whitelist.is_whitelisted("http://10.192.0.2.1/")
    assert not whitelist.is_whitelisted("http://192.0.2.10/")
    assert whitelist.is_whitelisted("http://[2001:db8::1]/")
    assert whitelist.is_whitelisted("http://[2001:DB8:0:0:0:0:0:1]:443/x")
    assert whitelist.is_whitelisted("http://[2001:db8::2]/")
    assert not whitelist.is_whitelisted("http://[2001:db8::3]/")
    assert not whitelist.is_whitelisted("http://2001:db8::1/")  # unbracketed: not a host
    # an IP never matches a host entry by "suffix"
    assert not UrlWhitelist(["2.1"]).is_whitelisted("http://192.0.2.1/")


def test_idn_matches_in_both_directions() -> None:
    unicode_entry = UrlWhitelist(["bücher.example"])
    punycode_entry = UrlWhitelist(["xn--bcher-kva.example"])
    for whitelist in (unicode_entry, punycode_entry):
        assert whitelist.is_whitelisted("http://bücher.example/x")
        assert whitelist.is_whitelisted("http://BÜCHER.example/x")
        assert whitelist.is_whitelisted("http://xn--bcher-kva.example/")
        assert whitelist.is_whitelisted("http://XN--BCHER-KVA.EXAMPLE/")
        assert whitelist.is_whitelisted("http://shop.bücher.example:8080/")
        assert not whitelist.is_whitelisted("http://bucher.example/")
        assert not whitelist.is_whitelisted("http://bücher.example.evil.tld/")
    assert unicode_entry.hosts == punycode_entry.hosts == {"xn--bcher-kva.example"}


def test_entry_forms_are_normalised() -> None:
    whitelist = UrlWhitelist(
        ["EXAMPLE.COM.", "*.wild.example", ".dot.example", "http://user@url.example:81/path"]
    )
    assert whitelist.hosts == {"example.com", "wild.example", "dot.example", "url.example"}
    assert whitelist.is_whitelisted("http://sub.wild.example/")
    assert whitelist.is_whitelisted("http://wild.example/")


def test_filter_keeps_order_and_counts_drops(default: UrlWhitelist) -> None:
    urls = [
        "http://evil.tld/a",
        "http://crl.microsoft.com/x",
        "garbage",
        "http://ocsp.digicert.com",
        "http://evil.tld/a",
    ]
    assert default.filter(urls) == (["http://evil.tld/a", "garbage", "http://evil.tld/a"], 2)
    assert default.filter([]) == ([], 0)
    assert default.filter(iter(["http://crl.microsoft.com/"])) == ([], 1)


def test_decisions_are_cached_and_stable(default: UrlWhitelist) -> None:
    urls = [f"http://crl.microsoft.com/{n}" for n in range(100)] + ["http://evil.tld/"] * 100
    first = [default.is_whitelisted(url) for url in urls]
    assert first == [default.is_whitelisted(url) for url in urls]
    assert first.count(True) == 100


def test_host_of() -> None:
    assert host_of("HTTP://User:Pw@Example.COM.:8080/a?b#c") == "example.com"
    assert host_of("example.com/path") == "example.com"
    assert host_of("http://[2001:DB8::1]:80/") == "2001:db8::1"
    assert host_of("http://bücher.example/") == "xn--bcher-kva.example"
    assert host_of("http://[::1") is None
    assert host_of("") is None
    assert host_of(None) is None  # type: ignore[arg-type]


def test_default_list_is_the_packaged_file(default: UrlWhitelist) -> None:
    assert default is UrlWhitelist.default()
    for host in (
        "crl.microsoft.com", "ocsp.digicert.com", "crl3.digicert.com", "ocsp.sectigo.com",
        "crl.sectigo.com", "ocsp.comodoca.com", "crl.globalsign.com", "ocsp.globalsign.com",
        "crl.verisign.com", "ocsp.verisign.com", "ocsp.usertrust.com", "crl.usertrust.com",
        "pki.goog", "ocsp.pki.goog", "crl.entrust.net", "ocsp.entrust.net", "r3.o.lencr.org",
        "x1.c.lencr.org", "schemas.xmlsoap.org", "schemas.microsoft.com", "www.w3.org",
        "ns.adobe.com", "schemas.openxmlformats.org", "purl.org", "www.google.com",
        "www.microsoft.com", "go.microsoft.com",
    ):
        assert default.is_whitelisted(f"http://{host}/x"), host
    assert len(default) > 50


def test_user_file_replaces_the_default(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my noise\n\nnoise.example   # trailing comment\n  *.cdn.example\n")
    whitelist = UrlWhitelist.from_file(path)
    assert whitelist.hosts == {"noise.example", "cdn.example"}
    assert whitelist.is_whitelisted("https://a.noise.example/x")
    assert not whitelist.is_whitelisted("http://crl.microsoft.com/")
    assert str(path) in repr(whitelist)


def test_empty_file_whitelists_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("# nothing\n")
    assert not UrlWhitelist.from_file(path).is_whitelisted("http://crl.microsoft.com/")


@pytest.mark.parametrize("kind", ["missing", "directory", "not utf-8"])
def test_unreadable_file_gives_one_line_error_naming_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "list.txt"
    if kind == "directory":
        path.mkdir()
    elif kind == "not utf-8":
        path.write_bytes(b"crl.example\n\xff\xfe\xfa\n")
    with pytest.raises(WhitelistError) as raised:
        UrlWhitelist.from_file(path)
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(raised.value, ValueError)


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("good.example\nbad host name\n")
    with pytest.raises(WhitelistError, match=r"list\.txt, line 2: 'bad host name'"):
        UrlWhitelist.from_file(path)
