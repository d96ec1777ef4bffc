import unittest

from usgen_monai.utils import as_flag


class TestAsFlag(unittest.TestCase):
    def test_command_line_strings(self):
        # `monai.bundle run --refine_speckle false` hands the config the string "false"
        for text in ("false", "False", "0", "no", "FALSE"):
            self.assertIs(as_flag(text), False, text)
        for text in ("true", "True", "1", "yes"):
            self.assertIs(as_flag(text), True, text)
        self.assertIs(as_flag(False), False)
        self.assertIs(as_flag(1), True)

    def test_unknown_string(self):
        with self.assertRaisesRegex(ValueError, "expected true or false, got 'maybe'"):
            as_flag("maybe")


if __name__ == "__main__":
    unittest.main()
