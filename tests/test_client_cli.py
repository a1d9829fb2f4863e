"""The client's command line: durations and sizes in the documented forms,
errors naming the flag."""

import pytest

from sync.client import cli as client_cli


def test_client_flags_take_durations_and_sizes(capsys):
    args = client_cli.build_parser().parse_args(
        ["sync", "f", "--interval", "30s", "--chunk-size", "256KiB"])
    assert args.interval == 30 and args.chunk_size == 256 * 1024
    args = client_cli.build_parser().parse_args(["sync", "f", "--interval", "5m"])
    assert args.interval == 300
    for bad, named in ((["--interval", "0"], "--interval"), (["--interval", "soon"], "--interval"),
                       (["--chunk-size", "1KiB"], "--chunk-size"),
                       (["--chunk-size", "big"], "--chunk-size")):
        with pytest.raises(SystemExit):
            client_cli.build_parser().parse_args(["sync", "f", *bad])
        err = capsys.readouterr().err
        assert f"argument {named}:" in err and len(err.strip().splitlines()) == 1
        assert "_positive_float" not in err and "invalid" not in err
