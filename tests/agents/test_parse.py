from orze.agents.parse import parse_reply, split_pairs
from orze.space import check_idea


def test_fenced_block_with_prose_and_numeric_string(space):
    reply = ("Here are my ideas, grounded in the leaderboard:\n\n```yaml\n"
             "- idea_name: lower lr\n  backbone: siglip2\n  learning_rate: 3e-4\n"
             "- idea_name: retnet\n  temporal_encoder: retnet\n```\nLet me know how it goes.")
    parsed = parse_reply(reply)
    assert parsed.errors == []
    assert [i["idea_name"] for i in parsed.ideas] == ["lower lr", "retnet"]
    assert parsed.ideas[0]["learning_rate"] == "3e-4"   # PyYAML reads it as a string
    check = check_idea(space, parsed.ideas[0])
    assert check.ok and check.config["learning_rate"] == 3e-4


def test_bare_yaml_single_mapping_and_ideas_wrapper():
    assert parse_reply("backbone: vjepa2\nepochs: 10").ideas == [{"backbone": "vjepa2", "epochs": 10}]
    wrapped = parse_reply("```yml\nideas:\n  - {backbone: dinov2_b}\n  - {backbone: convnext}\n```")
    assert [i["backbone"] for i in wrapped.ideas] == ["dinov2_b", "convnext"]
    prose = parse_reply("Sure! Here it is:\n- backbone: siglip2\n  epochs: 5\nThat's all.")
    assert prose.ideas == [{"backbone": "siglip2", "epochs": 5}]


def test_collapsed_keys_are_repaired():
    parsed = parse_reply('```yaml\n- {"epochs: 40": null, loss: focal}\n```')
    assert parsed.ideas == [{"epochs": 40, "loss": "focal"}]
    lines = parse_reply("- lr: 3e-4, epochs: 10\n- backbone: siglip2\n  loss: focal, focal_gamma: 2.5\n")
    assert lines.ideas == [{"lr": "3e-4", "epochs": 10},
                           {"backbone": "siglip2", "loss": "focal", "focal_gamma": 2.5}]
    assert split_pairs("backbone: [vjepa2, siglip2], epochs: 10") == {
        "backbone": ["vjepa2", "siglip2"], "epochs": 10}
    assert split_pairs("just a sentence, nothing more") is None


def test_unknown_key_is_never_accepted_silently(space):
    parsed = parse_reply("- lr: 3e-4, epochs: 10")
    idea = parsed.ideas[0]
    assert "lr" in idea                      # kept as written, not renamed to learning_rate
    check = check_idea(space, idea)
    assert not check.ok
    assert any("'lr': unknown field" in e for e in check.errors)


def test_malformed_and_empty_replies_give_errors():
    bad = parse_reply("```yaml\n- backbone: [vjepa2\n```")
    assert bad.ideas == [] and "could not be read" in bad.errors[0]
    assert parse_reply("").errors and parse_reply("I cannot help with that.").errors
    assert "no YAML ideas" in parse_reply("I cannot help with that.").errors[0]


def test_several_fenced_blocks_are_all_read_and_other_languages_ignored():
    reply = "```python\nprint('x: 1')\n```\n```yaml\n- {epochs: 5}\n```\n```yaml\n- {epochs: 10}\n```"
    assert parse_reply(reply).ideas == [{"epochs": 5}, {"epochs": 10}]
