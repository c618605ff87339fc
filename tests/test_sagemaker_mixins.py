"""The SageMaker service is one class made of a mixin per resource family: two families that define the
same name silently shadow one another (the MRO picks one), so a clash is a test failure, not a 500."""

from __future__ import annotations

import collections

from sagemaker_emulator.services.sagemaker import SageMaker
from sagemaker_emulator.services.sagemaker.common import SageMakerBase


def test_no_two_resource_families_define_the_same_name() -> None:
    families = [c for c in SageMaker.__mro__[1:] if issubclass(c, SageMakerBase) and c is not SageMakerBase]
    owners: dict[str, list[type]] = collections.defaultdict(list)
    for family in families:
        for name in vars(family):
            if not name.startswith("__"):
                owners[name].append(family)
    clashes = {name: [c.__name__ for c in classes] for name, classes in owners.items()
               if len(classes) > 1 and not all(issubclass(classes[0], c) for c in classes[1:])}
    assert not clashes, f"names defined by more than one resource family (one shadows the others): {clashes}"
