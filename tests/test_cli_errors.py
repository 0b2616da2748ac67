"""Bad input and faults as a user meets them (issue 22): the exit status, the words of the message, the disk after."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from laser_integrations.cli.main import EXIT_CODES_HELP, main
from laser_integrations.config import CONFIG_NAME, LaSERConfig
from laser_integrations.training.cli import main as train_main

GOOD = [{"_id": "a", "text": "the prime numbers are divisible only by one"}, {"_id": "b", "text": "kraft inequality"}]


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def common(symmetric_encoder_dir, tmp_path):
    return ["--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "q"), "--collection", "docs"]


@pytest.fixture
def indexed(common, tmp_path, capsys):
    corpus = write_lines(tmp_path / "c.jsonl", [json.dumps(r) for r in GOOD])
    assert main(["index", str(corpus), *common]) == 0
    capsys.readouterr()
    return common


def one_line_error(err: str, prog: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- corpus ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"_id": "x", "text": 42}, "c.jsonl:2: field 'text' must be a string, got int 42"),
        ({"_id": "x", "text": ["a", "b"]}, "c.jsonl:2: field 'text' must be a string, got list"),
        ({"_id": "x", "text": {"en": "a"}}, "c.jsonl:2: field 'text' must be a string, got dict"),
        ({"_id": "x", "title": 3.5, "text": "t"}, "c.jsonl:2: field 'title' must be a string, got float"),
        ({"_id": ["x"], "text": "t"}, "c.jsonl:2: field '_id' must be a string or an integer, got list"),
    ],
)
def test_a_record_whose_text_is_not_a_string_is_refused(common, tmp_path, capsys, record, words):
    corpus = write_lines(tmp_path / "c.jsonl", [json.dumps(GOOD[0]), json.dumps(record)])
    assert main(["index", str(corpus), *common]) == 2
    assert words in one_line_error(capsys.readouterr().err, "laser index")
    assert not (tmp_path / "q").exists()  # refused before anything was created


def test_non_utf8_byte_names_file_and_line(common, tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    latin1 = b'{"_id": "b", "text": "caf\xe9"}'
    corpus.write_bytes(json.dumps(GOOD[0]).encode() + b"\n" + latin1 + b"\n")
    column = latin1.index(b"\xe9") + 1
    assert main(["index", str(corpus), *common]) == 2
    assert f"c.jsonl:2: byte 0xe9 at column {column} is not UTF-8" in one_line_error(capsys.readouterr().err, "laser index")


def test_empty_corpus_and_empty_query_are_errors(common, tmp_path, capsys, indexed):
    empty = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    assert main(["index", str(empty), *common]) == 2
    assert "holds no documents" in one_line_error(capsys.readouterr().err, "laser index")
    assert main(["search", "   ", *indexed]) == 2
    assert "the question is empty" in one_line_error(capsys.readouterr().err, "laser search")


# -- where the collection is ----------------------------------------------------------------------------------
def test_mistyped_path_is_an_error_naming_what_exists_and_creates_nothing(indexed, tmp_path, capsys):
    args = [*indexed]
    args[args.index("--path") + 1] = str(tmp_path / "qq")
    assert main(["search", "primes", *args]) == 2
    line = one_line_error(capsys.readouterr().err, "laser search")
    assert "qq' does not exist" in line and "['q']" in line
    assert not (tmp_path / "qq").exists()


def test_mistyped_collection_is_an_error_naming_the_collections(indexed, tmp_path, capsys):
    args = [*indexed]
    args[args.index("--collection") + 1] = "dosc"
    assert main(["search", "primes", *args]) == 2
    line = one_line_error(capsys.readouterr().err, "laser search")
    assert "Collection 'dosc' does not exist" in line and "it holds ['docs']" in line
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["docs"]  # no empty 'dosc' shard was made


def test_unreachable_url_is_one_line_naming_it(symmetric_encoder_dir, capsys):
    url = "http://127.0.0.1:9"  # the discard port: connection refused at once
    assert main(["search", "primes", "--model", str(symmetric_encoder_dir), "--url", url]) == 1
    line = one_line_error(capsys.readouterr().err, "laser search")
    assert f"Cannot reach the Qdrant server at {url}" in line


# -- checkpoints ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("use_chat_template", "false", "must be a boolean (true or false), got str 'false'"),
        ("normalize", "no", "must be a boolean (true or false), got str 'no'"),
        ("query_max_length", "abc", "must be an integer, got str 'abc'"),
    ],
)
def test_laser_config_values_are_type_checked(symmetric_encoder_dir, tmp_path, capsys, key, value, expected):
    model = tmp_path / "model"
    shutil.copytree(symmetric_encoder_dir, model)
    config = json.loads((model / CONFIG_NAME).read_text())
    (model / CONFIG_NAME).write_text(json.dumps({**config, key: value}))
    corpus = write_lines(tmp_path / "c.jsonl", [json.dumps(GOOD[0])])
    assert main(["index", str(corpus), "--model", str(model), "--path", str(tmp_path / "q")]) == 2
    line = one_line_error(capsys.readouterr().err, "laser index")
    assert f"{model / CONFIG_NAME}: {key} {expected}" in line
    with pytest.raises(ValueError, match=re.escape(f"{key} {expected}")):
        LaSERConfig(**{key: value})


def test_truncated_weights_name_the_file_and_the_fix(symmetric_encoder_dir, common, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(symmetric_encoder_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    corpus = write_lines(tmp_path / "c.jsonl", [json.dumps(GOOD[0])])
    args = [*common]
    args[args.index("--model") + 1] = str(model)
    assert main(["index", str(corpus), *args]) == 2
    line = one_line_error(capsys.readouterr().err, "laser index")
    assert f"{weights} is truncated or not a valid safetensors file" in line and "again" in line


def test_pickled_weights_name_the_cli_flag_which_loads_them(symmetric_encoder_dir, indexed, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    model = tmp_path / "pickled"
    shutil.copytree(symmetric_encoder_dir, model)
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    args = [*indexed]
    args[args.index("--model") + 1] = str(model)
    assert main(["search", GOOD[0]["text"], *args, "--top-k", "1"]) == 2
    assert "pass --allow-pickle (command line)" in one_line_error(capsys.readouterr().err, "laser search")
    # Same weights: the collection's fingerprint differs (other files), so the mismatch must be accepted too.
    assert main(["search", GOOD[0]["text"], *args, "--top-k", "1", "--allow-pickle", "--allow-model-mismatch"]) == 0
    assert capsys.readouterr().out.split()[2] == "a"


# -- conventions ----------------------------------------------------------------------------------------------
def test_version_and_exit_codes_in_help(capsys):
    for entry, prog in ((main, "laser"), (train_main, "laser-train")):
        with pytest.raises(SystemExit) as exit_:
            entry(["--version"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith(f"{prog} 0.")
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert " ".join(EXIT_CODES_HELP.split()) in " ".join(capsys.readouterr().out.split())


def test_no_prefix_matching_in_laser(indexed, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "primes", *indexed, "--top", "1"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --top" in capsys.readouterr().err


# -- laser-train ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("typo", ["--learning_rat", "--learnin_rate"])
def test_train_refuses_an_unknown_key_and_names_only_the_key(tmp_path, capsys, typo):
    assert train_main([typo, "0.1", "--model", "m", "--train_data", "d", "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"Unknown config keys ['{typo[2:]}']. Did you mean --learning_rate" in err
    assert "'0.1'" not in err
    assert not (tmp_path / "o").exists()


def test_train_refuses_to_replace_an_earlier_run_without_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "final").mkdir(parents=True)
    (out / "final" / "my_notes.txt").write_text("keep me")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    args = ["--model", "no/such-model", "--train_data", str(tmp_path / "none.jsonl"), "--output_dir", str(out)]
    for extra in ([], ["--resume_from_checkpoint", "latest"]):
        assert train_main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert "already holds an earlier run (final, metrics.jsonl)" in err and "--overwrite_output_dir" in err
    assert (out / "final" / "my_notes.txt").read_text() == "keep me"
    assert (out / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_train_output_dir_that_is_a_file_fails_before_anything_loads(tmp_path, capsys):
    out = tmp_path / "run.txt"
    out.write_text("not a folder")
    # The model does not exist: the output_dir error comes first, so nothing was loaded.
    assert train_main(["--model", "no/such-model", "--train_data", "d.jsonl", "--output_dir", str(out)]) == 2
    assert "is a file, not a folder" in one_line_error(capsys.readouterr().err, "laser-train")
    assert out.read_text() == "not a folder"


def test_train_help_shows_types_choices_and_one_default(capsys):
    with pytest.raises(SystemExit):
        train_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--learning_rate FLOAT AdamW peak learning rate (default: 0.0001)" in text
    assert "--export {merged,adapter}" in text and "--lora BOOL" in text
    assert "--instruction STR|none query instruction when a record has none; none = the LaSER config's (default: none)" in text
    for option_help in text.split(" --"):
        assert option_help.count("(default:") <= 1, option_help


def test_a_server_refusing_the_api_key_is_one_line(symmetric_encoder_dir, capsys):
    import http.server
    import threading

    class Unauthorized(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's names
            body = b'{"status": {"error": "Must provide an API key or an Authorization bearer token"}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["search", "primes", "--model", str(symmetric_encoder_dir), "--url", url]) == 1
    finally:
        server.shutdown()
        server.server_close()
    line = one_line_error(capsys.readouterr().err, "laser search")
    assert f"The Qdrant server at {url} refused the request" in line and "QDRANT_API_KEY" in line


def test_path_that_is_a_file_is_refused_and_left_alone(symmetric_encoder_dir, tmp_path, capsys):
    corpus = write_lines(tmp_path / "c.jsonl", [json.dumps(GOOD[0])])
    before = corpus.read_bytes()
    assert main(["index", str(corpus), "--model", str(symmetric_encoder_dir), "--path", str(corpus)]) == 2
    assert "is a file, not an embedded Qdrant folder" in one_line_error(capsys.readouterr().err, "laser index")
    assert corpus.read_bytes() == before


def test_train_config_that_is_not_utf8_names_the_file(tmp_path, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_bytes(b"model: caf\xe9\n")
    assert train_main(["--config", str(config)]) == 2
    assert f"{config} is not UTF-8 text (byte 0xe9" in one_line_error(capsys.readouterr().err, "laser-train")
