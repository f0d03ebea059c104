"""Step 0: the command line. `udocker --help`, and one-line errors with exit status 125."""

from workshop.testing import token


def test_help_exits_0_and_mentions_run(udocker):
    result = udocker.run("--help").expect_exit(0)
    result.check("run" in result.stdout, "the help on stdout to mention the 'run' command", repr(result.stdout))


def test_unknown_command_is_an_error(udocker):
    command = token("frobnicate")
    udocker.run(command).expect_error(125, command)


def test_unknown_option_is_an_error(udocker, rootfs):
    option = "--" + token("frobnicate")
    udocker.run("run", option, rootfs, "true").expect_error(125, option)


def _names(result, word):
    message = result.stderr.strip()
    result.check(word.lower() in message.lower(), f"the message to name the missing {word}", repr(message))


def test_run_without_image_and_command_is_an_error(udocker, rootfs):
    _names(udocker.run("run").expect_error(125), "IMAGE")
    _names(udocker.run("run", rootfs).expect_error(125), "COMMAND")
