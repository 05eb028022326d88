"""The command-line contract as a table: every option of every command (from the parser, and from
README.md's "Command line" block) has a test that uses it and checks its effect, listed in
EFFECT_TESTS and checked to exist; README's block is what the parser's help says; every option
has a help line; the start-up option lists that cannot import the CLI agree with it."""
import os
import re
import subprocess
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(ROOT, "build")
STASIS = os.path.join(BUILD, "bin", "stasis")

from stasis import cli, cli_help, startup, startup_signals  # noqa: E402

# (command, option) -> the tests that check its effect: "path::Class.test" (the file must use the
# option's text, the test must exist). Commands are keyed with "" for the command itself.
EFFECT_TESTS = {
    ("run", ""): ["tests/suspend/test_triggers.py::TriggerTest.test_quota"],
    ("run", "-m"): ["tests/suspend/test_triggers.py::TriggerTest.test_dash_m_module_suspends_and_resumes",
                   "tests/cli/test_options.py::DashM.test_module_suspendable_with_a_suspension_option_plain_without"],
    ("run", "--snapshot"): ["tests/suspend/test_triggers.py::TriggerTest.test_quota"],
    ("run", "--quota"): ["tests/suspend/test_triggers.py::TriggerTest.test_quota"],
    ("run", "--suspend-after"): ["tests/suspend/test_triggers.py::TriggerTest.test_dash_m_module_suspends_and_resumes"],
    ("run", "--signal"): ["tests/cluster/test_periodic.py::SeveralSignals.test_term_and_usr1_both_suspend",
                          "tests/cluster/test_periodic.py::SeveralSignals.test_a_child_the_program_forks_does_not_suspend"],
    ("run", "--safe-point-timeout"): ["tests/suspend/test_triggers.py::TriggerTest.test_unsuspendable_stack_times_out_and_the_program_goes_on"],
    ("run", "--checkpoint-every"): ["tests/cluster/test_periodic.py::KilledAtRandom.test_threads_checkpointed_every_0_2_s_killed_20_times"],
    ("run", "--keep"): ["tests/cluster/test_periodic.py::PeriodicOptions.test_keep_keeps_the_last_n_complete_checkpoints"],
    ("run", "--snapshot-on-crash"): ["tests/patch/test_crash.py::CrashSnapshots.test_crash_patched_offline_then_resumed"],
    ("run", "--resume-if-present"): ["tests/cluster/test_periodic.py::ResumeIfPresent.test_starts_then_resumes_then_refuses_another_programs_snapshot"],
    ("run", "--key-file"): ["tests/cli/test_options.py::KeyFile.test_signed_snapshots_need_their_key"],
    ("run", "--rewrite"): ["tests/cli/test_options.py::RewriteOptions.test_no_rewrite_keeps_a_module_plain_and_rewrite_selects_one"],
    ("run", "--no-rewrite"): ["tests/cli/test_options.py::RewriteOptions.test_no_rewrite_keeps_a_module_plain_and_rewrite_selects_one"],
    ("run", "--tcp-established"): ["tests/services/test_netns.py::MoveBetweenNamespaces.test_tcp_established_connections_survive"],
    ("resume", ""): ["tests/suspend/test_triggers.py::TriggerTest.test_quota"],
    ("resume", "--snapshot"): ["tests/cli/test_options.py::ResumeSnapshotOption.test_a_chain_of_resumes_each_to_a_new_file_leaves_every_snapshot_as_it_was"],
    ("resume", "--quota"): ["tests/cli/test_options.py::ResumeSnapshotOption.test_a_chain_of_resumes_each_to_a_new_file_leaves_every_snapshot_as_it_was"],
    ("resume", "--suspend-after"): ["tests/cli/test_options.py::ResumeSnapshotOption.test_resume_suspend_after_suspends_again"],
    ("resume", "--signal"): ["tests/cluster/test_periodic.py::SeveralSignals.test_term_and_usr1_both_suspend"],
    ("resume", "--safe-point-timeout"): ["tests/suspend/test_triggers.py::TriggerTest.test_unsuspendable_stack_times_out_and_the_program_goes_on"],
    ("resume", "--checkpoint-every"): ["tests/cluster/test_periodic.py::KilledAtRandom.test_threads_checkpointed_every_0_2_s_killed_20_times"],
    ("resume", "--keep"): ["tests/cluster/test_periodic.py::PeriodicOptions.test_keep_keeps_the_last_n_complete_checkpoints"],
    ("resume", "--snapshot-on-crash"): ["tests/patch/test_scenarios_crash.py"],
    ("resume", "--key-file"): ["tests/cli/test_options.py::KeyFile.test_signed_snapshots_need_their_key"],
    ("resume", "--rewrite"): ["tests/suspend/test_triggers.py::BadResume.test_changed_library_code_is_refused_with_a_clear_error"],
    ("resume", "--no-rewrite"): ["tests/cli/test_options.py::RewriteOptions.test_no_rewrite_keeps_a_module_plain_and_rewrite_selects_one"],
    ("resume", "--rebind"): ["tests/services/test_line_services.py"],
    ("resume", "--tcp-established"): ["tests/services/test_netns.py::MoveBetweenNamespaces.test_tcp_established_connections_survive"],
    ("resume", "--source"): ["tests/patch/test_scenarios_suspend.py"],
    ("resume", "--update"): ["tests/patch/test_patch.py"],
    ("resume", "--patch"): ["tests/patch/test_scenarios_crash.py"],
    ("suspend", ""): ["tests/suspend/test_triggers.py::TriggerTest.test_signal_and_stasis_suspend_pid"],
    ("suspend", "--timeout"): ["tests/cli/test_options.py::SuspendTimeout.test_suspend_gives_up_after_timeout_and_the_process_keeps_running"],
    ("restart", ""): ["tests/services/test_http_service.py"],
    ("restart", "--patch"): ["tests/services/test_http_service.py"],
    ("restart", "--source"): ["tests/cli/test_restart_options.py::RestartOptions.test_source_and_update_are_applied_in_the_new_process"],
    ("restart", "--update"): ["tests/cli/test_restart_options.py::RestartOptions.test_source_and_update_are_applied_in_the_new_process"],
    ("restart", "--timeout"): ["tests/cli/test_restart_options.py::RestartOptions.test_timeout_abandons_a_slow_switch_and_the_old_process_goes_on"],
    ("inspect", ""): ["tests/format/test_cli.py::Inspect.test_human_output"],
    ("inspect", "--json"): ["tests/format/test_cli.py::Inspect.test_json_is_stable"],
    ("inspect", "--key-file"): ["tests/format/test_cli.py::BadFileExitStatuses.test_each_kind_has_its_status_and_one_line"],
    ("inspect", "--locals"): ["tests/cli/test_inspect_program.py::InspectCase.test_no_locals"],
    ("inspect", "--depth"): ["tests/cli/test_inspect_program.py::InspectCase.test_depth"],
    ("inspect", "--top"): ["tests/cli/test_inspect_program.py::InspectCase.test_top"],
    ("rewrite", ""): ["tests/cli/test_options.py::RewriteCommand.test_prints_the_resumable_form_and_runs_nothing"],
    ("patch", ""): ["tests/patch/test_patch.py"],
    ("patch", "--source"): ["tests/patch/test_crash.py::CrashSnapshots.test_crash_patched_offline_then_resumed"],
    ("patch", "--update"): ["tests/patch/test_scenarios_crash.py"],
    ("patch", "-o"): ["tests/cli/test_options.py::PatchOutput.test_o_writes_elsewhere_and_leaves_the_snapshot_alone"],
    ("patch", "--key-file"): ["tests/patch/test_crash.py"],
    ("debug", ""): ["tests/suspend/test_triggers.py::TriggerTest.test_debug_opens_pdb_at_the_suspension_point_every_time"],
    ("debug", "--key-file"): ["tests/cli/test_options.py::KeyFile.test_signed_snapshots_need_their_key"],
    ("ctl", ""): ["tests/updater/test_http_server.py::HttpServerUpdateTest.test_updates_under_load"],
    ("ctl", "--all-children"): ["tests/updater/test_prefork.py"],
    ("ctl apply", ""): ["tests/updater/test_http_server.py::HttpServerUpdateTest.test_updates_under_load"],
    ("ctl list", ""): ["tests/updater/test_http_server.py::HttpServerUpdateTest.test_updates_under_load"],
    ("ctl revert", ""): ["tests/updater/test_http_server.py::HttpServerUpdateTest.test_updates_under_load"],
    ("ctl profile", ""): ["tests/updater/test_profile.py"],
    ("ctl profile", "--seconds"): ["tests/updater/test_profile.py"],
    ("ctl profile", "--folded"): ["tests/updater/test_profile.py"],
    ("ctl profile", "--svg"): ["tests/updater/test_profile.py"],
    ("ctl trace", ""): ["tests/updater/test_profile.py"],
    ("ctl trace", "--seconds"): ["tests/updater/test_profile.py"],
    ("ctl watch", ""): ["tests/updater/test_profile.py"],
    ("ctl watch", "--seconds"): ["tests/updater/test_profile.py"],
    ("ctl lines", ""): ["tests/updater/test_profile.py"],
    ("ctl lines", "--seconds"): ["tests/updater/test_profile.py"],
    ("ctl ping", ""): ["tests/updater/test_idle_threads.py"],
    ("help", ""): ["tests/cli/test_options.py::Help.test_topics_and_commands"],
}

# Options with no effect test of their own yet, and why that is acceptable for now (the test below
# fails for an option in neither table).
KNOWN_GAPS = {}  # (command, option) -> why

# Scenario tests keep their command lines in data files next to them.
SCENARIO_DIRS = {"tests/patch/test_scenarios_crash.py": "tests/patch/scenarios/crash",
                 "tests/patch/test_scenarios_suspend.py": "tests/patch/scenarios/suspend"}


def parser_options():
    """{command: [option strings]}: every optional argument of every command, from the parser."""
    parser = cli._parser()
    out = {}
    for name, _, p in cli_help.subparsers(parser):
        p = cli_help.command_parser(parser, name)
        out[name] = [a.option_strings[0] for a in cli_help.options_of(p)]
        if name == "ctl":  # its commands: "ctl profile"
            for sub, _, sp in cli_help.subparsers(p):
                out[f"ctl {sub}"] = [a.option_strings[0] for a in cli_help.options_of(sp)]
    return parser, out


def readme_block():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"## Command line\n\n```\n(.*?)```\n", text, re.S)
    assert m, "README.md has no Command line block"
    return m.group(1)


def readme_options(block):
    """{command: [options]} as README lists them: a line `stasis COMMAND ...`, then indented option lines."""
    out, command, sub = {}, None, None
    for line in block.splitlines():
        m = re.match(r"stasis (\w+)", line)
        if m:
            command, sub = m.group(1), None
            out.setdefault(command, [])
        elif command == "ctl" and re.match(r"    [a-z]", line):  # a command of ctl
            sub = f"ctl {line.split()[0]}"
            out.setdefault(sub, [])
        elif line.startswith("        -") and sub:
            out[sub].append(line.split()[0])
        elif line.startswith("    -") and command:
            out[command].append(line.split()[0].rstrip(",").split("[")[0])
    return out


def test_text(ref):
    path, _, test = ref.partition("::")
    full = os.path.join(ROOT, path)
    with open(full) as f:
        text = f.read()
    extra = ""
    if path in SCENARIO_DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, SCENARIO_DIRS[path])):
            for name in files:
                if name.endswith(".toml"):
                    with open(os.path.join(dirpath, name)) as f:
                        extra += f.read()
    return text, extra, test


class OptionTable(unittest.TestCase):
    def test_every_option_has_an_effect_test_that_exists_and_uses_it(self):
        _, options = parser_options()
        for command, opts in options.items():
            for opt in ["", *opts]:
                with self.subTest(command=command, option=opt):
                    self.assertTrue((command, opt) in EFFECT_TESTS or (command, opt) in KNOWN_GAPS,
                                    f"no effect test listed for stasis {command} {opt}")
        for (command, opt), refs in EFFECT_TESTS.items():
            with self.subTest(command=command, option=opt):
                self.assertIn(command, options, f"EFFECT_TESTS lists an unknown command {command}")
                self.assertNotIn((command, opt), KNOWN_GAPS)
                if opt:
                    self.assertIn(opt, options[command], f"EFFECT_TESTS lists stasis {command} {opt}, which is gone")
                for ref in refs:
                    text, extra, test = test_text(ref)
                    if test:
                        cls, _, method = test.partition(".")
                        self.assertRegex(text, rf"class {cls}\b", ref)
                        self.assertIn(f"def {method}(", text, ref)
                    used = text + extra
                    word = command.split()[-1]  # "ctl profile": its tests call self.ctl(pid, "profile", ...)
                    runs = (f'"{word}"' in used or f"self.{word}(" in used)
                    self.assertTrue(runs, f"{ref} never runs stasis {command}")
                    if opt:
                        self.assertTrue(f'"{opt}' in used or f"'{opt}" in used, f"{ref} never uses {opt}")

    def test_readme_lists_exactly_the_parsers_options_with_its_help(self):
        parser, options = parser_options()
        block = readme_block()
        documented = readme_options(block)
        for command, opts in options.items():
            with self.subTest(command=command):
                self.assertIn(command, documented, f"README's Command line block lacks stasis {command}")
                self.assertEqual(sorted(documented[command]), sorted(opts))
        self.assertEqual(block, cli_help.readme_block(parser),
                         "README.md's Command line block differs from the parser's help: regenerate it with "
                         "`build/bin/python -m stasis.cli_help --readme`")

    def test_every_option_has_a_help_line_in_its_commands_help(self):
        parser, options = parser_options()
        for command, opts in options.items():
            if not opts:
                continue
            with self.subTest(command=command):
                words = command.split()
                if len(words) == 2:  # ctl PID profile --help
                    words = [words[0], "1", words[1]]
                r = subprocess.run([STASIS, *words, "--help"], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                p = cli_help.command_parser(parser, command.split()[0])
                if len(command.split()) == 2:
                    p = dict((n, sp) for n, _, sp in cli_help.subparsers(p))[command.split()[1]]
                for a in cli_help.options_of(p):
                    self.assertTrue(a.help and len(a.help.split()) >= 3, f"stasis {command} {a.option_strings[0]}")
                    # the option's line in --help, followed by the first words of its explanation
                    first = " ".join(a.help.split()[:2])
                    self.assertRegex(" ".join(r.stdout.split()),
                                     re.escape(a.option_strings[-1]) + r"[^\n]*?" + re.escape(first),
                                     f"stasis {command} --help: {a.option_strings[0]}")

    def test_run_help_lists_the_same_options_as_the_table(self):
        r = subprocess.run([STASIS, "run", "--help"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for o in cli.session_options("run"):
            self.assertIn(o.flag, r.stdout)
        resume = {o.flag for o in cli.session_options("resume")}
        run = {o.flag for o in cli.session_options("run")}
        self.assertEqual(run - resume, {"--resume-if-present"})
        self.assertEqual(resume - run, {"--rebind"})

    def test_start_up_option_lists_agree_with_the_table(self):
        run_values = {o.flag for o in cli.session_options("run") if o.metavar and not o.optional}
        self.assertEqual(startup_signals._RUN_VALUE_OPTIONS, run_values)
        parser, _ = parser_options()
        resume = cli_help.command_parser(parser, "resume")
        resume_values = {s for a in cli_help.options_of(resume) if a.nargs != 0 and a.nargs != "?"
                         for s in a.option_strings}
        self.assertEqual(startup._VALUE_OPTIONS, resume_values)

    def test_a_command_s_own_parser_is_the_one_the_full_parser_holds(self):
        # main() builds only the subparser of the command it parses: the list of commands must be
        # complete, and each subparser built alone must be the same as within the full parser.
        parser = cli._parser()
        self.assertEqual(set(cli._COMMANDS), {name for name, _h, _p in cli_help.subparsers(parser)})
        for name in cli._COMMANDS:
            alone = cli._parser(name)
            self.assertEqual([n for n, _h, _p in cli_help.subparsers(alone)], [name])
            full, own = cli_help.command_parser(parser, name), cli_help.command_parser(alone, name)
            self.assertEqual(own.format_help(), full.format_help(), name)
            self.assertEqual([a.option_strings for a in cli_help.options_of(own)],
                             [a.option_strings for a in cli_help.options_of(full)], name)


if __name__ == "__main__":
    unittest.main()
