"""The sentence on what one test image weighs (the issue's 420 images at 85 %: 0.24 pt per
image, ± 1.7 pt standard error)."""

from rsdistill.report.blocks import split_noise_note


def test_the_test_split_note_gives_the_weight_of_an_image_and_the_standard_error():
    text = split_noise_note(420, 0.85)
    assert "420 images: one image is 0.24 pt" in text and "standard error of 1.7 pt" in text
    assert split_noise_note(0, 0.5) == ""
