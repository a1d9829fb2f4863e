"""Downloads (SPEC §5 Download): headers, ranges, conditional requests,
isolation and hostile paths."""

import pytest

from .helpers import STORED_MTIME, STORED_SIZE, assert_error, content, digest_header, sha256, upload

SIZE = STORED_SIZE  # the ``stored`` fixture's books/Dune.txt
MTIME = STORED_MTIME
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"


def test_download_sends_the_content_and_its_headers(api, stored):
    resp = api.get("/download/books/Dune.txt")
    assert resp.body == stored
    assert resp.headers["Content-Length"] == str(SIZE)
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["ETag"] == f'"{sha256(stored)}"'
    assert resp.headers["Repr-Digest"] == digest_header(stored)
    assert resp.headers["Last-Modified"] == LAST_MODIFIED
    assert resp.headers["Accept-Ranges"] == "bytes"


def test_head_sends_the_headers_without_the_body(api, stored):
    resp = api.head("/download/books/Dune.txt")
    assert resp.body == b""
    assert resp.headers["Content-Length"] == str(SIZE)
    assert resp.headers["ETag"] == f'"{sha256(stored)}"'


def test_a_device_token_and_the_alias_prefix_work(dev, stored):
    assert dev.get("/download/books/Dune.txt").body == stored
    assert dev.as_(dev.token, prefix="/api/sync").get("/download/books/Dune.txt").body == stored


def test_an_unknown_name_gets_octet_stream(dev):
    upload(dev, "blob.unknownext", b"abc")
    resp = dev.get("/download/blob.unknownext")
    assert resp.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, SIZE - 1),
    ("bytes=-10", SIZE - 10, SIZE - 1),
    ("bytes=990-5000", 990, SIZE - 1),
    ("bytes=-5000", 0, SIZE - 1),
    ("bytes=999-999", 999, 999),
])
def test_a_single_range_is_206(api, stored, header, start, end):
    resp = api.get("/download/books/Dune.txt", headers={"Range": header}, status=206)
    assert resp.body == stored[start:end + 1]
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert resp.headers["Content-Length"] == str(end - start + 1)
    head = api.head("/download/books/Dune.txt", headers={"Range": header}, status=206)
    assert head.headers["Content-Range"] == resp.headers["Content-Range"]


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_an_unsatisfiable_range_is_416(api, stored, header):
    resp = api.get("/download/books/Dune.txt", headers={"Range": header}, status=416)
    assert_error(resp, 416, "range_not_satisfiable")
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=x-y",
                                    "bytes=-", "garbage"])
def test_several_or_unreadable_ranges_get_the_whole_file(api, stored, header):
    resp = api.get("/download/books/Dune.txt", headers={"Range": header}, status=200)
    assert resp.body == stored


def test_a_range_of_an_empty_file_is_416(dev):
    upload(dev, "empty.txt", b"")
    assert dev.get("/download/empty.txt").body == b""
    resp = dev.get("/download/empty.txt", headers={"Range": "bytes=0-"}, status=416)
    assert resp.headers["Content-Range"] == "bytes */0"


def test_if_range_with_the_current_etag_or_date_honours_the_range(api, stored):
    etag = f'"{sha256(stored)}"'
    for validator in (etag, LAST_MODIFIED):
        resp = api.get("/download/books/Dune.txt", status=206,
                       headers={"Range": "bytes=0-9", "If-Range": validator})
        assert resp.body == stored[:10]


@pytest.mark.parametrize("validator", ['"' + "0" * 64 + '"', "W/\"x\"",
                                       "Mon, 01 Jan 2024 00:00:00 GMT", "not a date"])
def test_if_range_that_does_not_match_sends_the_whole_file(api, stored, validator):
    resp = api.get("/download/books/Dune.txt", status=200,
                   headers={"Range": "bytes=0-9", "If-Range": validator})
    assert resp.body == stored


@pytest.mark.parametrize("tags", ["ETAG", "*", "W/ETAG", '"other", ETAG'])
def test_if_none_match_is_304(api, stored, tags):
    header = tags.replace("ETAG", f'"{sha256(stored)}"')
    resp = api.get("/download/books/Dune.txt", headers={"If-None-Match": header}, status=304)
    assert resp.body == b""
    assert resp.headers["ETag"] == f'"{sha256(stored)}"'


def test_if_none_match_with_another_tag_is_200(api, stored):
    resp = api.get("/download/books/Dune.txt", headers={"If-None-Match": '"old"'})
    assert resp.body == stored


def test_a_new_version_is_served_after_it_is_uploaded(dev, stored):
    old = dev.get("/download/books/Dune.txt")
    head_rev = upload(dev, "books/Dune.txt", stored)["rev"]  # unchanged: answers the head's rev
    newer = content(SIZE, seed=9)
    assert upload(dev, "books/Dune.txt", newer, base_rev=head_rev)["status"] == "applied"
    resp = dev.get("/download/books/Dune.txt", headers={"If-None-Match": old.headers["ETag"]})
    assert resp.body == newer


def test_unknown_path_is_404(api, stored):
    assert_error(api.get("/download/books/Missing.txt", status=404), 404, "not_found")
    assert_error(api.get("/download/books/dune.txt", status=404), 404, "not_found")
    assert api.head("/download/books/Missing.txt", status=404).body == b""


def test_another_users_file_is_404(bob, stored):
    assert_error(bob.get("/download/books/Dune.txt", status=404), 404, "not_found")


def test_a_path_sent_in_nfd_finds_the_nfc_entry(dev):
    upload(dev, "Caf\u00e9.txt", b"coffee")
    assert dev.get("/download/Cafe%CC%81.txt").body == b"coffee"


@pytest.mark.parametrize("url", [
    "/download/%2e%2e/secret",
    "/download/books/%2E%2E/%2e%2e/x",
    "/download/a%00b",
    "/download/books//Dune.txt",
    "/download/books/./Dune.txt",
    "/download/a%5Cb",
])
def test_hostile_paths_are_400(api, stored, url):
    assert_error(api.get(url, status=400), 400, "path_invalid")


def test_an_encoded_slash_inside_a_segment_is_400(api, stored):
    """waitress passes the raw request target as REQUEST_URI; Falcon has
    already decoded %2F into / in the routed path."""
    url = "/api/v1/sync/download/books%2FDune.txt"
    resp = api.testapp.get(url, headers=api.headers(), expect_errors=True,
                           extra_environ={"REQUEST_URI": url})
    assert_error(resp, 400, "path_invalid")
    url = "/api/v1/sync/download/books/Dune.txt?x=%2F"
    resp = api.testapp.get(url, headers=api.headers(), extra_environ={"REQUEST_URI": url})
    assert resp.body == stored


def test_download_needs_a_token(anon, stored):
    resp = anon.get("/download/books/Dune.txt", status=401)
    assert_error(resp, 401, "unauthorized")


def test_a_deleted_path_is_404(dev, stored):
    rev = dev.get("/changes").json["changes"][-1]["rev"]
    result = dev.post("/report", {"changes": [{"op": "delete", "path": "books/Dune.txt",
                                               "base_rev": rev}]}).json["results"][0]
    assert result["status"] == "applied"
    assert_error(dev.get("/download/books/Dune.txt", status=404), 404, "not_found")


@pytest.mark.parametrize("mtime", [10 ** 15, -(2 ** 63 - 1)])
def test_an_mtime_no_http_date_can_carry_falls_back_to_the_change_time(dev, mtime):
    upload(dev, "far.txt", b"far", mtime=mtime)
    resp = dev.get("/download/far.txt")
    assert resp.headers["Last-Modified"] == "Fri, 27 Nov 2026 00:00:00 GMT"
    ranged = dev.get("/download/far.txt", headers={"Range": "bytes=0-0", "If-Range": "x"})
    assert ranged.body == b"far"


def test_head_honours_if_none_match_and_ranges(api, stored):
    etag = f'"{sha256(stored)}"'
    resp = api.head("/download/books/Dune.txt", headers={"If-None-Match": etag}, status=304)
    assert resp.headers["ETag"] == etag and resp.body == b""
    resp = api.head("/download/books/Dune.txt", headers={"Range": f"bytes={SIZE}-"},
                    status=416)
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"
    assert resp.body == b""
