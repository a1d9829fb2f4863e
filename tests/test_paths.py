"""``sync.paths``: a refused path is a ``ValueError`` (``PathError``) whose
message says why; the HTTP app answers it 400 ``path_invalid``."""

import pytest

from sync import paths

from .helpers import assert_error


@pytest.mark.parametrize("bad, why", [
    ("", "empty"), ("/abs", "relative"), ("a//b", "segment"), ("a\\b", "backslash"),
    ("a\x00b", "control character"), (7, "string"),
])
def test_a_refused_path_is_a_value_error_that_says_why(bad, why):
    with pytest.raises(ValueError, match=why) as caught:
        paths.normalize(bad)
    assert isinstance(caught.value, paths.PathError)


def test_a_valid_path_comes_back_nfc():
    assert paths.normalize("books/Cafe\u0301.epub") == "books/Caf\u00e9.epub"


def test_the_app_answers_a_refused_path_400_path_invalid(dev):
    resp = dev.post("/upload", {"path": "../x", "size": 1, "sha256": "0" * 64, "base_rev": None},
                    status=400)
    assert_error(resp, 400, "path_invalid")
    assert "'..'" in resp.json["description"]
