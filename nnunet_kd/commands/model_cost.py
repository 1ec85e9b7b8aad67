"""``nnunet_kd model-cost``: parameters and MACs of the default nnU-Net network and the student configurations."""

from __future__ import annotations

import argparse
import json

NAME = "model-cost"
HELP = "print parameters and multiply-accumulates per patch for plans configurations (default network vs students)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", help="dataset id or name under $nnUNet_preprocessed")
    parser.add_argument("-p", "--plans", default="nnUNetPlans",
                        help="plans identifier (default: nnUNetPlans) or a path to a plans .json file")
    parser.add_argument("-c", "--configurations", nargs="+", metavar="CONFIG",
                        help="configurations to report (default: 3d_fullres and every nnunet_kd student configuration)")
    parser.add_argument("--patch", type=int, nargs="+", metavar="SIZE",
                        help="spatial patch size to count for (default: each configuration's patch_size)")
    parser.add_argument("--input-channels", type=int,
                        help="network input channels (default: from dataset.json next to the plans file, else 1)")
    parser.add_argument("--num-classes", type=int,
                        help="segmentation outputs (default: from dataset.json next to the plans file, else 2)")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.errors import ConfigurationError
    from nnunet_kd.plans import load_plans, resolved_configuration
    from nnunet_kd.students.configuration import resolve_plans_file
    from nnunet_kd.students.cost import configuration_cost, format_cost_table

    plans_file = resolve_plans_file(args.dataset, args.plans)
    plans = load_plans(plans_file)
    configurations = args.configurations or default_configurations(plans)
    if not configurations:
        raise ConfigurationError(f"{plans_file} has neither 3d_fullres nor a student configuration; pass -c")
    for name in configurations:
        resolved_configuration(plans, name)  # clear error for an unknown name before any work

    input_channels, num_classes = args.input_channels, args.num_classes
    dataset_json_file = plans_file.parent / "dataset.json"
    if (input_channels is None or num_classes is None) and dataset_json_file.is_file():
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        dataset_json = json.loads(dataset_json_file.read_text())
        plans_manager = PlansManager(plans)
        if input_channels is None:
            input_channels = len(dataset_json.get("channel_names", dataset_json.get("modality", {0: "CT"})))
        if num_classes is None:
            num_classes = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    input_channels = input_channels or 1
    num_classes = num_classes or 2

    costs = [configuration_cost(plans, name, input_channels, num_classes, args.patch) for name in configurations]
    print(f"{plans_file}: {input_channels} input channel(s), {num_classes} output(s); MACs per patch, batch 1, "
          "inference (no deep supervision)")
    print(format_cost_table(costs, reference=configurations[0]))
    return 0


def default_configurations(plans: dict) -> list[str]:
    """``3d_fullres`` (if planned) followed by every configuration whose network is an nnunet_kd student."""
    from nnunet_kd.plans import resolved_configuration

    names = ["3d_fullres"] if "3d_fullres" in plans.get("configurations", {}) else []
    for name in plans.get("configurations", {}):
        architecture = resolved_configuration(plans, name).get("architecture", {})
        if name not in names and architecture.get("network_class_name", "").startswith("nnunet_kd."):
            names.append(name)
    return names
