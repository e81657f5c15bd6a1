"""Weights of another architecture (issue 25, items 1 and 7).

``--pretrained FILE`` used to accept any file in which one tensor matched by name and
shape: BatchNorm's ``num_batches_tracked`` counters match in every ResNet, so a
torchvision resnet18 for resnet8, or a resnet8 model.pt for resnet8x4, trained from
scratch and exited 0 after two raw Python warnings. A model.pt whose weights are not
those of the model it names printed only PyTorch's first line.
"""

from __future__ import annotations

import pytest
import torch

from rsdistill.models import build_model
from rsdistill.runtime.checkpoint import save_model


def meta(model: str, num_classes: int = 2, image_size: int = 8) -> dict:
    return {"model": model, "num_classes": num_classes, "image_size": image_size,
            "classes": [f"c{i}" for i in range(num_classes)], "dataset": "folder"}


def torchvision_resnet18(path):
    torchvision = pytest.importorskip("torchvision")
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), path)


def resnet14_state_dict(path):  # resnet8's names and shapes, and a block more
    torch.save(build_model("resnet14", 2).state_dict(), path)


def resnet8_model_file(path):
    save_model(path, build_model("resnet8", 2, 8), meta("resnet8"))


# name -> (writes the file, --model, words the one error line must hold)
FOREIGN = {
    "torchvision_resnet18_for_resnet8": (torchvision_resnet18, "resnet8",
                                         "does not hold weights of resnet8"),
    "deeper_resnet_for_resnet8": (resnet14_state_dict, "resnet8",
                                  "tensors the model has not (e.g. layer1.1."),
    "resnet8_model_file_for_resnet8x4": (resnet8_model_file, "resnet8x4",
                                         "is a model file of resnet8, not resnet8x4"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_weights_of_another_architecture_are_refused(case, make_tree, cli, kit, tmp_path):
    make_file, model, words = FOREIGN[case]
    weights = tmp_path / "weights.pt"
    make_file(weights)
    root = make_tree({"a": 3, "b": 3})
    out = tmp_path / "run"
    argv = kit.train(root, tmp_path / "cache", out, "--split-fractions", "34/33/33",
                     "--pretrained", weights)
    argv[argv.index("resnet8")] = model
    result = cli(*argv)
    assert result.rc == 2
    result.error_line(str(weights), words, "--pretrained")
    assert not result.warnings
    assert not any((out / name).exists() for name in ("config.yaml", "last.pt", "model.pt"))


def test_weights_of_the_model_with_another_classifier_still_load(make_tree, cli, kit, tmp_path,
                                                                 recwarn):
    weights = tmp_path / "weights.pt"
    torch.save(build_model("resnet8", 10).state_dict(), weights)  # 10 classes, here 2
    root = make_tree({"a": 3, "b": 3})
    result = cli(*kit.train(root, tmp_path / "cache", tmp_path / "run", "--split-fractions",
                            "34/33/33", "--pretrained", weights))
    assert result.rc == 0, result.err
    assert any("fc.weight" in str(w.message) for w in recwarn)


def test_model_file_naming_another_model_says_whose_weights_it_holds(cli, tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, build_model("resnet8", 2, 8), meta("resnet8x4"))
    result = cli("evaluate", path)
    assert result.rc == 2
    result.error_line(str(path), "names model resnet8x4 but its weights are those of resnet8")

    save_model(path, torch.nn.Linear(3, 2), meta("resnet8"))
    result = cli("evaluate", path)
    assert result.rc == 2
    result.error_line(str(path), "names model resnet8 but its weights fit no known model")
