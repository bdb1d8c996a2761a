"""Bad input: one line on stderr naming the file, the place in the spec and the values; exit code 2.

Every file under tests/bad_specs/ is pinned here to a part of its message.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_runner

from archcalc import SpecError, load
from archcalc.budget import Budget, use
from archcalc.cli import main
from archcalc.errors import FileError
from archcalc.files import is_temporary, write_atomic
from archcalc.report.folder import confined

BAD = Path(__file__).parent / "bad_specs"

MESSAGES = {
    "invalid_json": "invalid JSON at line 2, column 31: Expecting value",
    "not_utf8": "not UTF-8 text",
    "not_an_object": "$: a spec is a JSON object",
    "missing_layers": "$: a spec needs 'layers'",
    "unknown_top_key": "$: unknown key 'layer' (did you mean 'layers'?)",
    "bad_input_shape": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got [3, 0, 8]",
    "layers_not_list": '$.layers: expected a list, got {"type": "relu"}',
    "node_without_kind": "$.layers[0].layers[0]: a node has exactly one of 'type', 'block' or 'layers' (found none)",
    "type_not_string": '$.layers[0].type: expected a string, got ["relu"]',
    "unknown_layer_type": "$.layers[0].layers[0].type: unknown layer type 'conv2' (did you mean 'conv2d'?)",
    "unknown_field": "$.layers[0]: conv2d has no field 'strides' (did you mean 'stride'?)",
    "missing_field": "$.layers[0]: conv2d needs 'out'",
    "wrong_field_type": "$.layers[0].out: expected an integer, got 4.5",
    "field_below_minimum": "$.layers[0].stride: must be at least 1, got 0",
    "bad_pair": "$.layers[0].kernel: expected an integer or [h, w], got [3, 3, 3]",
    "unknown_name_in_expression": "$.layers[0].out: in expression 'widht': unknown name 'widht' (known: width)",
    "forbidden_expression": "$.layers[0].out: in expression \"__import__('os').getpid()\": Call is not allowed",
    "unknown_block": "$.layers[0].block: unknown block 'convbn' (did you mean 'conv_bn'?)",
    "missing_block_arg": "$.layers[0].args: block 'conv' needs argument 'out'",
    "unknown_block_arg": "$.layers[0].args: block 'conv' takes no argument 'kernal'",
    "merge_one_branch": "$.layers[0].branches: add needs at least two branches, got 1",
    "spliced_sequence_named": "$.layers[0].name: a spliced sequence has no name and takes no `from` of its own",
    "bad_layer_name": "$.layers[0].name: 'conv+1' may hold only letters, digits, underscores and hyphens",
    "unknown_variant_param": "$.variants.small.params: 'widht' is not a family parameter (did you mean 'width'?)",
    "expect_without_source": "$.expect[0]: every published figure needs a source",
    "expect_unknown_what": "$.expect[0].what: 'parms' is not one of params,",
    "expect_bad_significant": "$.expect[0].significant: must be at least 1, got 0",
    "kernel_larger_than_input": (
        "big (conv2d, $.layers[1]): kernel 9 (span 9 with dilation 1) is larger than the padded input "
        "6+2=8 along H (input 4x6x6)"
    ),
    "pool_larger_than_input": (
        "features.2 (max_pool2d, $.layers[0].layers[2]): kernel 2 (span 2 with dilation 1) is larger than "
        "the padded input 1+0=1 along H (input 3x1x1)"
    ),
    "transpose_below_one": (
        "up (conv_transpose2d, $.layers[0]): output size (1 - 1)*1 - 2*1 + 1*(1 - 1) + 0 + 1 = -1 "
        "is below 1 along H (input 3x1x1)"
    ),
    "window_attention_heads": "attn (window_attention, $.layers[0]): heads=5 must divide the channels (96) (input 96x56x56)",
    "grid_attention_not_dividing": (
        "grid (window_attention, $.layers[0]): grid attention needs the map 28x28 to be a multiple of the grid 8x8 "
        "(input 64x28x28)"
    ),
    "concat_size_mismatch": "mix (concat, $.layers[0]): concat needs equal sizes apart from the channels, got 4x6x6, 4x8x8",
    "add_channel_mismatch": "res (add, $.layers[0]): add cannot broadcast 8x8x8, 3x8x8",
    "groups_do_not_divide": (
        "dw (conv2d, $.layers[0]): groups=2 must divide both the input channels (3) and the output channels (4)"
    ),
    "linear_unflattened": ("fc (linear, $.layers[1]): linear needs a flat vector, a token sequence LxD, a channels-last grid "
                           "HxWxC or a tensor, got an image CxHxW 4x6x6 (add a flatten before it, or permute to channels "
                           "last)"),
    "conv_on_channels_last": "conv (conv2d, $.layers[1]): conv2d needs an image CxHxW, got a channels-last grid HxWxC 8x8x4 (input 8x8x4)",
    "attention_heads_do_not_divide": "attn (multihead_attention, $.layers[0]): 3 heads do not divide the 16 features (input 10x16)",
    "attention_on_an_image": "attn (multihead_attention, $.layers[0]): multihead_attention needs a token sequence LxD, got an image CxHxW 3x8x8 (input 3x8x8)",
    "permute_not_an_order": "p (permute, $.layers[0]): permute dims [0, 0, 1] is not an order of the 3 axes of an image CxHxW 3x8x8 (the batch is left out: [1, 2, 0] takes CxHxW to HxWxC) (input 3x8x8)",
    "matmul_mismatch": "qk (matmul, $.layers[0]): matmul needs the last axis of the first (10x16) to be the second-last of the second (10x8)",
    "repeat_text_not_quoted": (
        "$.layers[0].repeat: cannot parse expression '5b': invalid decimal literal "
        "(text is quoted inside the string: \"'5b'\")"
    ),
    "bool_as_string": '$.layers[0].bias: "false" is a string; use the JSON value false',
    "transpose_padding_same": (
        "$.layers[0].padding: the padding mode 'same' is not defined for conv_transpose2d; "
        "give the padding as an integer or [h, w]"
    ),
    "family_expect_wrong": "the file holds 2 variants; name one as",
    "unknown_variant": "the file holds 3 variants; name one as",
    "dropout_out_of_range": "$.layers[0].p: must be less than 1, got 2",
    "variants_not_object": '$.variants: expected an object of variants, got ["a"]',
    "input_with_batch": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got [1, 3, 8, 8]",
    "adaptive_output_zero": "$.layers[0].output: must be at least 1, got 0",
    "batch_norm_eps_negative": "$.layers[0].eps: must be greater than 0, got -1e-05",
    "batch_norm_eps_zero": "$.layers[0].eps: must be greater than 0, got 0",
    "block_args_not_object": "$.layers[0].args: expected an object, got [1]",
    "block_doubles_itself": "the network grows past the budget of 20,000 nodes (Budget.nodes) at 0.0.0.0.0.0.0.0.",
    "block_not_object": "$.blocks.b: expected an object, got [1]",
    "nested_block_not_object": "$.blocks.inner: expected an object, got [1]",  # found while the outer block is keyed
    "block_uses_itself": "$.blocks.a.layers[0]: nodes nest deeper than the budget of 100 levels (Budget.depth) (a block that uses",
    "block_without_layers": "$.blocks.b: needs 'layers'",
    "blocks_nest_120_deep": "$.blocks.b99.layers[0]: nodes nest deeper than the budget of 100 levels (Budget.depth) (a block that uses",
    "blocks_not_object": "$.blocks: expected an object of blocks, got [1]",
    "blocks_use_each_other": "$.blocks.b.layers[0]: nodes nest deeper than the budget of 100 levels (Budget.depth) (a block that uses",
    "branches_not_list": "$.layers[0].branches: expected a list of branches, got {\"a\": [{\"type\": \"relu\"}]}",
    "comment_not_text": "$.layers[0].comment: expected a string, got 5",
    "complex_power": "$.layers[0].out: in expression '(-8) ** (1/3)': the result is a complex number, not a real number, a text or",
    "conv_out_zero": "$.layers[0].out: must be at least 1, got 0",
    "dilation_zero": "$.layers[0].dilation: must be at least 1, got 0",
    "division_by_zero": "$.layers[0].out: in expression '4 // 0': integer division or modulo by zero",
    "dropout_by_expression": "$.layers[0].p: must be less than 1, got 2",
    "dropout_huge": "$.layers[0].p: must be less than 1, got 1e+300",
    "dropout_negative": "$.layers[0].p: must be at least 0, got -1",
    "dropout_one": "$.layers[0].p: must be less than 1, got 1",
    "dunder_attribute": "$.layers[0].out: in expression '().__class__': Attribute is not allowed in a spec expression",
    "dup_key_layer": "$.layers[0]: duplicate key \"out\" (JSON keeps only the last; give each key once)",
    "dup_key_params": "$.params: duplicate key \"w\" (JSON keeps only the last; give each key once)",
    "dup_key_top": "$: duplicate key \"input\" (JSON keeps only the last; give each key once)",
    "duplicate_block_instances": "$.layers[1].name: 's' names two nodes of one group ($.layers[0] and $.layers[1]); give each its own name",
    "duplicate_layer_names": "$.layers[1].name: 'conv' names two nodes of one group ($.layers[0] and $.layers[1]); give each its own name",
    "duplicate_names_in_block": "$.blocks.b.layers[1].name: 'a' names two nodes of one group ($.blocks.b.layers[0] and $.blocks.b.layers[1]);",
    "duplicate_names_in_branch": "$.layers[0].branches[0][1].name: 'a' names two nodes at the path 'a' ($.layers[0].branches[0][0] and",
    "branch_name_clash": "$.layers[0].branches[1][0].name: 'conv' names two nodes at the path 'conv' ($.layers[0].branches[0][0] and "
                         "$.layers[0].branches[1][0]): a merge's branches add no part to a path; name them apart, or name a branch",
    "duplicate_names_in_named_repeat": "$.layers[0].name: 'a' names two nodes of one group ($.layers[0]); give each its own name",
    "duplicate_repeat_names": "$.layers[0].name: 'x' names two nodes of one group ($.layers[0]); give each its own name",
    "empty_file": "invalid JSON at line 1, column 1: Expecting value",
    "expect_entry_not_object": "$.expect[0]: expected an object, got [\"params\", 0]",
    "expect_huge_significant": "$.expect[0].significant: must be at most 17, got 1000000",
    "expect_layer_as_int": "$.expect[0].layer: expected a string, got 3",
    "expect_not_list": "$.expect: expected a list of published figures, got {\"what\": \"params\"}",
    "expect_rounding_without_unit": "$.expect[0].rounding: 'down' goes with a unit",
    "expect_significant_without_unit": "$.expect[0].significant: goes with a unit and a positive value",
    "expect_source_empty": "$.expect[0].source: expected a non-empty string, got \"\"",
    "expect_unit_with_shape": "$.expect[0].value: expected a number of M, got [1, 2]",
    "expect_unknown_unit": "$.expect[0].unit: 'X' is not one of K, M, G, MB, MiB",
    "expect_value_list": "$.expect[0].value: expected a number, got [1, 2]",
    "expect_shape_with_unit": "$.expect[0].unit: an output_shape is a shape, written exactly: it takes no unit",
    "expect_shape_not_a_list": "$.expect[0].value: expected an output shape [C, H, W], [H, W] or [F] of positive integers",
    "expect_value_text": "$.expect[0].value: expected a number, got \"0\"",
    "expect_without_value": "$.expect[0]: a published figure needs a 'value'",
    "expect_wrong_as_text": "$.expect[0].wrong: expected true or false, got \"false\"",
    "expression_too_long": "$.layers[0].out: an expression of 30,001 characters, over the budget of 20,000 characters (Budget.expression)",
    "f_string": "$.layers[0].name: in expression \"f'x'\": JoinedStr is not allowed in a spec expression",
    "float_overflow": "$.layers[0].p: \"1e400\" overflows to infinity; give a finite number",
    "float_overflow_expression": "$.layers[0].p: in expression '1e308 * 10': the result inf is not a finite number",
    "format_method": "$.layers[0].out: in expression \"'{:1000000}'.format(1)\": Call is not allowed in a spec expression",
    "groups_zero": "$.layers[0].groups: must be at least 1, got 0",
    "index_out_of_range": "$.layers[0].out: in expression 'w[10]': list index out of range",
    "index_variable_list": "$.layers[0].index: expected a string, got [\"k\"]",
    "infinity_literal": "$.layers[0].eps: Infinity is not a number JSON allows; give a finite number",
    "input_empty": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got []",
    "input_fraction": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got [3, 8.5, 8]",
    "input_text": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got \"3x8x8\"",
    "int_4301_digits": "$.params.n: an integer of 4,301 digits, beyond the budget of 64 bits (Budget.int_bits)",
    "int_5000_digits": "$.layers[0].out: an integer of 5,000 digits, beyond the budget of 64 bits (Budget.int_bits)",
    "int_beyond_64_bits": "$.layers[0].out: 9223372036854775808 is beyond the budget of 64 bits (Budget.int_bits)",
    "int_of_long_text": "$.layers[0].out: in expression \"int('9' * 5000)\": int() of a text of 5,000 characters: beyond 64-bit integers",
    "json_nested_100000": "$: JSON nests deeper than the budget of 100 levels (Budget.depth)",
    "json_nested_101_lists": "$.params.x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0...][0][0][0][0][0][0][0][0][0][0][0][0][0] (100",
    "json_nested_objects_150": "$.meta.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a....a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a (100",
    "kernel_three_items_expression": "$.layers[0].kernel: expected an integer or [h, w], got [3, 3, 3]",
    "kernel_zero": "$.layers[0].kernel: must be at least 1, got 0",
    "lambda_expression": "$.layers[0].out: in expression '(lambda: 4)()': Call is not allowed in a spec expression",
    "layer_norm_eps_zero": "$.layers[0].eps: must be greater than 0, got 0",
    "layers_null": "$.layers: expected a list, got null",
    "linear_out_zero": "$.layers[1].out: must be at least 1, got 0",
    "list_comprehension": "$.layers[0].repeat: in expression '[i for i in [1, 2]]': ListComp is not allowed in a spec expression",
    "list_over_budget": "$.layers[0].repeat: a list of 100,001 items, over the budget of 100,000 items (Budget.items)",
    "lone_surrogate_in_list": "$.meta.authors[1]: \"b\\udc00\" holds a lone UTF-16 surrogate, which is not text",
    "lone_surrogate_key": "$.meta: key \"\\udfff\" holds a lone UTF-16 surrogate, which is not text",
    "lone_surrogate_title": "$.title: \"net \\ud800\" holds a lone UTF-16 surrogate, which is not text",
    "long_expression_echo_cut": "$.layers[0].out: cannot parse expression '(1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1",
    "loop_variable_list": "$.layers[0].as: expected a string, got [\"i\"]",
    "lrn_size_zero": "$.layers[0].size: must be at least 1, got 0",
    "many_branches": "$.layers[0].branches[20000]: the network grows past the budget of 20,000 nodes (Budget.nodes) at concat",
    "many_known_names": "$.layers[0].out: in expression 'zz': unknown name 'zz' (known: n0, n1, n10, n11, n12, n13, n14, n15, n16,",
    "meta_list": "$.meta: expected an object, got [1, 2]",
    "meta_number": "$.meta: expected an object, got 2015",
    "meta_text": "$.meta: expected an object, got \"2015\"",
    "min_of_nothing": "$.layers[0].out: in expression 'min([])': min() arg is an empty sequence",
    "name_absolute": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_empty": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_equals_position": "$.layers[1].name: '1' names two nodes of one group ($.layers[0] and $.layers[1]); give each its own name",
    "name_escapes": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_hidden": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_is_object": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters",
    "name_not_text": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_too_long": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_with_newline": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "name_with_slash": "$.name: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with '.',",
    "names_not_text": "$.layers[0].name: expected a string, got 5",
    "nan_literal": "$.layers[0].p: NaN is not a number JSON allows; give a finite number",
    "negative_infinity_literal": "$.layers[0].init: -Infinity is not a number JSON allows; give a finite number",
    "negative_int_beyond_64_bits": "$.layers[0].padding: -18446744073709551616 is beyond the budget of 64 bits (Budget.int_bits)",
    "nested_repeats_cubed": "$.layers[0].layers[0].layers[0].repeat: 1,000 repetitions (after 20,000 others) are over the budget of 20,000 nodes",
    "nested_repeats_nothing_made": "$.layers[0].layers[0].repeat: 1,000 repetitions (after 20,000 others) are over the budget of 20,000 nodes",
    "node_is_text": "$.layers[0]: expected an object, got \"relu\"",
    "node_two_kinds": "$.layers[0]: a node has exactly one of 'type', 'block' or 'layers' (found ['type', 'block'])",
    "nul_in_expression": "$.layers[0].out: cannot parse expression '4\\x00': source code string cannot contain null bytes (text is",
    "out_as_boolean": "$.layers[0].out: expected an integer, got true",
    "out_as_list_expression": "$.layers[0].out: expected an integer, got [1, 2]",
    "output_padding_negative": "$.layers[0].output_padding: must be at least 0, got -1",
    "padding_mode_full": "$.layers[0].padding: in expression 'full': unknown name 'full' (known: none)",
    "padding_negative": "$.layers[0].padding: must be at least 0, got -1",
    "param_bad_expression": "$.params.w: cannot parse expression '4 +': invalid syntax (text is quoted inside the string: \"'4 +'\")",
    "params_double_a_list": "$.params.p7: in expression 'p6 + p6': a concatenation over the budget of 100,000 items (Budget.items)",
    "params_double_a_text": "$.params.s13: in expression 's12 + s12': a concatenation over the budget of 10,000 characters (Budget.text)",
    "params_nest_a_list": "$.params.l15: in expression '[l14, l14]': a list of more than the budget of 100,000 items (Budget.items)",
    "params_not_object": "$.params: expected an object, got [1]",
    "params_square_a_list": "$.params.p1: in expression 'p0 * len(p0)': repetition too long: over the budget of 100,000 items",
    "percent_format": "$.layers[0].out: in expression \"'%.1000000f' % 1\": text formatting with % is not allowed",
    "power_beyond_64_bits": "$.layers[0].out: in expression '2 ** 63': an integer of 64 bits, beyond the budget of 64 bits",
    "product_4300_digits": "$.params.b: in expression 'a * a * a * a': an integer of 120 bits, beyond the budget of 64 bits",
    "product_beyond_64_bits": "$.layers[0].out: in expression '10**18 * 10**18': an integer of 120 bits, beyond the budget of 64 bits",
    "repeat_100000": "$.layers[0].repeat: 100,000 repetitions are over the budget of 20,000 nodes (Budget.nodes)",
    "repeat_bare_word": "$.layers[0].repeat: in expression 'three': unknown name 'three' (known: none)",
    "repeat_billion": "$.layers[0].repeat: 1,000,000,000 repetitions are over the budget of 20,000 nodes (Budget.nodes)",
    "repeat_by_expression": "$.layers[0].repeat: 1,000,000,000 repetitions are over the budget of 20,000 nodes (Budget.nodes)",
    "repeat_fraction": "$.layers[0].repeat: expected an integer, got 2.5",
    "repeat_huge_float": "$.layers[0].repeat: 1000000000000000052504760255204420248... is beyond the budget of 64 bits (Budget.int_bits)",
    "kernel_huge_float": "$.layers[0].kernel: 10000000000000000000 is beyond the budget of 64 bits (Budget.int_bits)",
    "repeat_list_million": "$.layers[0].repeat: in expression '[0] * 10**6': repetition too long: over the budget of 100,000 items",
    "repeat_list_tera": "$.layers[0].repeat: in expression '[0] * 10**12': repetition too long: over the budget of 100,000 items",
    "repeat_negative": "$.layers[0].repeat: must be at least 0, got -1",
    "repeat_negative_expression": "$.layers[0].repeat: must be at least 0, got -3",
    "repeat_object": "$.layers[0].repeat: expected an integer, got {\"n\": 2}",
    "repeat_true": "$.layers[0].repeat: expected an integer, got true",
    "rf_branch_periods_too_long": ("add (add, $.layers[0]): the receptive field repeats only every 60,491 output positions; "
                                   "archcalc tabulates at most 256 (branches whose fields repeat with different periods)"),
    "round_huge_digits": "$.layers[0].out: in expression 'round(10**18, -10**6)': round(x, n) takes n between -30 and 30, got -1000000",
    "slice_expression": "$.layers[0].repeat: in expression 'w[0:1]': Subscript is not allowed in a spec expression",
    "starred_argument": "$.layers[0].out: in expression 'max(*w)': Starred is not allowed in a spec expression",
    "steps_over_budget": "$.layers[1].repeat: 15,000 repetitions (after 15,000 others) are over the budget of 20,000 nodes",
    "from_unknown": "$.layers[1].from: 'stme' is not the name of an earlier node of this sequence, nor 'input' (did you mean 'stem'?)",
    "from_later_node": "$.layers[1].from: 'c' is a later node ($.layers[2]): a node takes the outputs of nodes before it",
    "from_cycle": "$.layers[1].from: 'd' makes a cycle: 'b' <- 'd' <- 'c' <- 'b' (each takes the next one's output)",
    "from_itself": "$.layers[1].from: 'b' is this node itself: a node cannot take its own output (a cycle)",
    "join_with_branches": "$.layers[1].from: a merge with branches takes one name in 'from' (the branches' input)",
    "join_one_name": "$.layers[1].from: expected a node's name, or a list of two or more names, got [\"a\"]",
    "merge_without_branches": "$.layers[1]: concat needs 'branches', or a list of the nodes it joins in 'from'",
    "shares_unknown_layer": "again (conv2d, $.layers[1]): shares 'cnov': no layer before this one has that path (did you mean 'conv'?)",
    "shares_a_later_layer": "again (conv2d, $.layers[0]): shares 'conv': no layer before this one has that path",
    "shares_another_layer": ("other (conv2d, $.layers[1]): shares 'conv': not the same layer (type, fields and input channels): "
                             "conv 3x3, 3 on 3x8x8, here conv 3x3/2, 3 on 3x8x8"),
    "shares_not_text": "$.layers[1].shares: expected a non-empty string, got 0",
    "stochastic_depth_over_one": "$.layers[0].p: must be at most 1, got 1.5",
    "sum_3000_terms_unknown_name": "$.layers[0].out: in expression '1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1...",
    "surrogate_from_expression": "$.layers[0].padding: in expression \"'\\\\ud800'\": a text holding a lone UTF-16 surrogate, which is not text",
    "syntax_warning_literal": "$.layers[0].when: expected true or false, got 4",
    "text_times_float": "$.layers[0].out: in expression \"'a' * 2.5\": can't multiply sequence by non-int of type 'float'",
    "title_not_text": "$.title: expected a string, got [\"a\"]",
    "top_level_list": "$: a spec is a JSON object",
    "top_level_string": "$: a spec is a JSON object",
    "trailing_garbage": "invalid JSON at line 1, column 36: Extra data",
    "type_null": "$.layers[0].type: expected a string, got null",
    "unary_10000": "$.layers[0].out: cannot parse expression '--------------------------------------------------------------------",
    "unary_1000_unknown_name": "$.layers[0].out: in expression '---------------------------------------------------------------------------...",
    "unknown_field_long": "$.layers[0]: relu has no field 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...",
    "unknown_function": "$.layers[0].out: in expression 'pow(2, 3)': unknown function 'pow' (allowed: abs, ceil, floor, int, len,",
    "unknown_type_long": "$.layers[0].type: unknown layer type 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "utf16_file": "not UTF-8 text: invalid start byte at byte 0",
    "utf8_bom": "invalid JSON at line 1, column 1: Unexpected UTF-8 BOM (decode using utf-8-sig)",
    "variant_meta_list": "$.variants.a.meta: expected an object, got [1]",
    "variant_name_backslash": "$.variants: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with",
    "variant_name_escapes": "$.variants: expected a name of 1 to 100 characters without '/', '\\' or control characters, not starting with",
    "variant_not_object": "$.variants.a: expected an object, got [1]",
    "variant_unknown_key": "$.variants.a: unknown key 'layers' (did you mean 'params'?)",
    "variants_empty": "$.variants: a family needs at least one variant, got {}",
    "walrus": "$.layers[0].out: in expression '(n := 4)': NamedExpr is not allowed in a spec expression",
    "when_number": "$.layers[0].when: expected true or false, got 1",
    "when_text_true": "$.layers[0].when: \"true\" is a string; use the JSON value true",
}


def fails_cleanly(args: list[str], expected: str, file: str | None = None) -> str:
    """Run the CLI; it must print exactly one line on stderr holding `expected`, nothing on stdout, exit 2."""
    result = cli_runner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("archcalc: ")
    assert "Traceback" not in line
    if file is not None:
        assert line.startswith(f"archcalc: {file}: "), line
    assert expected in line, line
    return line


def test_every_bad_spec_is_pinned():
    assert sorted(p.stem for p in BAD.glob("*.json")) == sorted(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_bad_spec_through_the_cli(name):
    path = str(BAD / f"{name}.json")
    fails_cleanly(["table", path], MESSAGES[name], file=path)


@pytest.mark.parametrize("name", ["unknown_field", "kernel_larger_than_input", "concat_size_mismatch"])
def test_bad_spec_through_the_api(name):
    with pytest.raises(SpecError) as caught:
        from archcalc import analyze

        analyze(load(str(BAD / f"{name}.json")))
    assert caught.value.file == str(BAD / f"{name}.json")
    assert MESSAGES[name] in str(caught.value)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere.json")
    fails_cleanly(["table", path], "no such file", file=path)


def test_a_file_name_with_a_newline_or_an_escape_stays_one_line(tmp_path):
    line = fails_cleanly(["table", str(tmp_path / "two\nlines.json")], "no such file")
    assert line == f"archcalc: {tmp_path}/two\\nlines.json: no such file"
    line = fails_cleanly(["table", "red\x1b[31m"], "unknown network")
    assert "\x1b" not in line and "red\\x1b[31m" in line


@pytest.mark.parametrize("args", [["table", "a\0b.json"], ["table", "a\0b"], ["check", "a\0b.json"],
                                  ["diagram", "vgg16", "-o", "a\0b.svg"]])
def test_a_path_with_a_nul_character_is_refused(args):
    line = fails_cleanly(args, "the path holds a NUL character")
    assert "a\\0b" in line and "\0" not in line


@pytest.mark.parametrize("args", [["table", "vgg16", "--out", "a\0b.md"], ["report", "--out", "a\0b"]])
def test_an_output_path_with_a_nul_character_is_a_bad_value(args):
    fails_cleanly(args, "a path holds no NUL character")


def test_the_api_refuses_a_nul_character_as_bad_input():
    with pytest.raises(SpecError, match="NUL character"):
        load("vgg\0.json")


def test_directory_is_not_a_spec(tmp_path):
    folder = tmp_path / "specs.json"
    folder.mkdir()
    fails_cleanly(["table", str(folder)], "cannot read", file=str(folder))


def test_unknown_network_suggests_the_nearest():
    fails_cleanly(["table", "vgg16x"], "unknown network 'vgg16x' (did you mean 'vgg16'?)")


def test_unknown_variant_of_a_family_file():
    path = str(Path(__file__).parent / "fixtures" / "features.json")
    fails_cleanly(["table", f"{path}:tinya"], "no variant 'tinya' (did you mean 'tiny_a'?)", file=path)


def test_unknown_variant_lists_the_variants_nearest_first():
    path = str(BAD / "unknown_variant.json")
    fails_cleanly(["table", f"{path}:smal"], "no variant 'smal' (did you mean 'small'?); the file has small, large, medium",
                  file=path)
    fails_cleanly(["table", f"{path}:nope"], "no variant 'nope'; the file has", file=path)


def test_family_level_expect_is_checked_for_every_variant():
    # conv 3 -> 4 (3x3): 4*3*9 + 4 = 112 parameters, 3 -> 8: 8*3*9 + 8 = 224; the family claims 1 for both.
    path = str(BAD / "family_expect_wrong.json")
    for variant, computed in (("a", 112), ("b", 224)):
        result = cli_runner().invoke(main, ["check", f"{path}:{variant}"])
        assert result.exit_code == 1, result.output
        assert f"params claimed 1, computed {computed}" in result.stdout
        assert "1 checked: 0 ok, 0 known-wrong, 1 failed" in result.stdout


def test_family_file_without_a_variant():
    path = str(Path(__file__).parent / "fixtures" / "features.json")
    fails_cleanly(["table", path], "the file holds 2 variants; name one as", file=path)


@pytest.mark.parametrize("text, expected", [
    ("3x2x", "'--input': '3x2x': expected CxHxW, HxW or N, e.g. 3x224x224"),
    ("big", "'--input': 'big': expected CxHxW, HxW or N"),
    ("0x3", "'--input': '0x3': expected CxHxW, HxW or N with positive sizes"),
    ("1x2x3x4", "'--input': '1x2x3x4' has four sizes: give one image, CxHxW (2x3x4), and the batch with --batch 1"),
    ("1x2x3x4x5", "'--input': '1x2x3x4x5': expected CxHxW, HxW or N with positive sizes"),
    ("3x99999999999999999999x8", "'--input': '3x99999999999999999999x8': sizes are below 2**31"),
])
def test_bad_input_option(text, expected):
    fails_cleanly(["table", "vgg16", "--input", text], expected)


def test_input_too_small_for_the_network():
    # 16 -> 8 -> 4 -> 2 -> 1 after four 2x2 pools: the fifth has nothing left to pool.
    line = fails_cleanly(["table", "vgg16", "--input", "16"], "kernel 2 (span 2 with dilation 1) is larger than the padded input 1+0=1")
    assert "vgg.json: features." in line and "(max_pool2d, " in line and "(input 512x1x1)" in line


def test_wrong_expect_layer_is_a_spec_error(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "layers": [{"name": "conv", "type": "conv2d", "out": 4, "kernel": 3}],'
                    ' "expect": [{"what": "params", "layer": "cnov", "value": 112, "source": "by hand"}]}')
    result = cli_runner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2
    assert "no layer 'cnov' (did you mean 'conv'?)" in result.stderr


def test_expect_value_with_a_unit_must_be_a_number(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "layers": [],'
                    ' "expect": [{"what": "params", "value": "1.2", "unit": "M", "source": "a paper"}]}')
    fails_cleanly(["check", str(spec)], '$.expect[0].value: expected a number of M, got "1.2"', file=str(spec))


def test_name_template_error_names_its_place(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "layers": [{"name": "conv{k}", "type": "relu"}]}')
    fails_cleanly(["table", str(spec)], "$.layers[0].name: in expression 'k': unknown name 'k'", file=str(spec))


def test_huge_repetition_is_refused(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "params": {"a": "[0] * 10**12"}, "layers": []}')
    fails_cleanly(["table", str(spec)], "$.params.a: in expression '[0] * 10**12': repetition too long", file=str(spec))


# ---- every bad spec under a time and memory limit --------------------------------------------

CPU_SECONDS = 2  # CPU time, not wall time: this machine's wall clock is shared and noisy
MEMORY_MB = 200


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/statm").exists(), reason="needs fork and /proc")
def test_every_bad_spec_exits_2_within_the_limits():
    """Each case in a forked child (archcalc imported once, by the parent) under RLIMIT_CPU and RLIMIT_AS."""
    paths = sorted(str(p) for p in BAD.glob("*.json"))
    worker = Path(__file__).parent / "limits_worker.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")])}
    halves = [paths[::2], paths[1::2]]  # two workers, one per core
    runs = [subprocess.Popen([sys.executable, str(worker), str(CPU_SECONDS), str(MEMORY_MB), *half],
                             stdout=subprocess.PIPE, env=env) for half in halves]
    results = [r for run in runs for r in json.loads(run.communicate(timeout=300)[0])]
    assert len(results) == len(paths)
    for r in results:
        name = Path(r["path"]).stem
        lines = r["stderr"].splitlines()
        assert (r["exit"], r["stdout"], len(lines)) == (2, "", 1), r
        assert lines[0].startswith(f"archcalc: {r['path']}: ") and MESSAGES[name] in lines[0], r
        assert r["cpu_s"] < CPU_SECONDS and r["max_rss_mb"] < MEMORY_MB, r
        assert r["wall_s"] < 30, r  # a hang, whatever the load


# ---- files that are not specs, and places that cannot be written -------------------------------

def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    fails_cleanly(["table", str(fifo)], "not a regular file (a FIFO, device or socket)", file=str(fifo))


def test_device_is_refused_before_reading():
    fails_cleanly(["table", "/dev/zero"], "not a regular file", file="/dev/zero")


def test_file_over_the_size_budget_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as stream:  # sparse: 64 MiB + 1 byte of nothing, refused by its size alone
        stream.truncate(64 * 2**20 + 1)
    fails_cleanly(["table", str(big)], "the file is 67,108,865 bytes, over the budget of 67,108,864 bytes (Budget.file_bytes)",
                  file=str(big))


def test_budget_from_the_python_api(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": [3, 8, 8], "layers": [{"repeat": 60000, "type": "relu"}]}))
    with pytest.raises(SpecError, match="over the budget of 20,000 nodes"):
        load(str(spec))
    network = load(str(spec), budget=Budget(nodes=70_000))  # 60,000 relus and the repeat's group
    assert len(network.root.children) == 60_000
    with use(Budget(file_bytes=10)):
        with pytest.raises(SpecError, match="over the budget of 10 bytes"):
            load(str(spec))


def test_name_too_long():
    name = "a" * 300 + ".json"
    fails_cleanly(["table", name], "cannot read: File name too long", file=name)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_directory(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "net.json").write_text('{"input": [3, 8, 8], "layers": []}')
    folder.chmod(0)
    try:
        fails_cleanly(["table", str(folder / "net.json")], "cannot read: Permission denied")
    finally:
        folder.chmod(0o755)


def test_report_into_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    spec = BAD.parent / "fixtures" / "report_tiny.json"
    fails_cleanly(["report", str(spec), "--out", str(tmp_path / "file" / "out")], "cannot create the folder: Not a directory")
    fails_cleanly(["report", str(spec), "--out", "/proc/archcalc"], "cannot create the folder")


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen([sys.executable, "-m", "archcalc.cli", *args], env=env, stderr=subprocess.PIPE, **kwargs)


def test_full_disk_on_stdout():
    with open("/dev/full", "wb") as full:
        run = _cli("table", "vgg16", stdout=full)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 2
    assert err.decode().splitlines() == ["archcalc: <stdout>: cannot write: No space left on device"]


def _entry(*args: str, limit_bytes: int | None = None, **kwargs) -> subprocess.Popen:
    """The installed program (`archcalc.cli:entry`, which ends with os._exit), unbuffered as under
    PYTHONUNBUFFERED=1, with files capped at `limit_bytes` (a disk that fills up after that many)."""
    import resource

    def cap():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))  # Python ignores SIGXFSZ

    code = f"import sys; sys.argv = ['archcalc', *{list(args)!r}]; from archcalc.cli import entry; entry()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, preexec_fn=cap, **kwargs)


def test_a_disk_that_fills_up_under_unbuffered_output(tmp_path):
    # unbuffered, the OS writes the first 8,192 bytes and refuses the rest: that is an error, not exit 0
    with open(tmp_path / "t.txt", "wb") as out:
        run = _entry("table", "densenet121", limit_bytes=8192, stdout=out)
        _, err = run.communicate(timeout=60)
    assert (run.returncode, err.decode().splitlines()) == (2, ["archcalc: <stdout>: cannot write: File too large"])
    with open("/dev/full", "wb") as full:
        run = _entry("table", "densenet121", stdout=full)
        _, err = run.communicate(timeout=60)
    assert (run.returncode, err.decode().splitlines()) == (2, ["archcalc: <stdout>: cannot write: No space left on device"])
    assert (tmp_path / "t.txt").stat().st_size == 8192  # what fitted; the exit code says it is not all


def test_a_disk_that_fills_up_under_out_leaves_no_file(tmp_path):
    out = tmp_path / "t.txt"
    run = _entry("table", "densenet121", "--out", str(out), limit_bytes=8192, stdout=subprocess.DEVNULL)
    _, err = run.communicate(timeout=60)
    assert (run.returncode, err.decode().splitlines()) == (2, [f"archcalc: {out}: cannot write: File too large"])
    assert list(tmp_path.iterdir()) == []  # neither a part of the file nor its temporary file


def test_a_reader_that_leaves_early_is_no_error():
    # `archcalc table resnet152 | head -1`: the reader took what it wanted; the command's own exit code
    run = _cli("table", "resnet152", stdout=subprocess.PIPE)
    run.stdout.close()  # before archcalc writes its 100 kB
    run.wait(timeout=60)
    assert (run.returncode, run.stderr.read().decode()) == (0, "")


@pytest.mark.parametrize("spec, code", [("alexnet", 0), (str(Path(__file__).parent / "fixtures" / "budget_over.json"), 1)])
def test_check_piped_into_head_keeps_its_verdict_under_pipefail(spec, code):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    command = f"set -o pipefail; {sys.executable} -m archcalc.cli check -v {spec} resnet152 densenet201 | head -c 1"
    run = subprocess.run(["bash", "-c", command], env=env, capture_output=True, timeout=120)
    assert (run.returncode, run.stderr.decode()) == (code, "")


# ---- writing: whole files, the umask, temporary files, the output folder -----------------------

def test_written_file_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.md").stat().st_mode) == 0o640


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "a.md", "x")
    assert list(tmp_path.iterdir()) == []


def test_write_error_is_a_file_error(tmp_path):
    (tmp_path / "a.md").mkdir()  # a folder where the file goes
    with pytest.raises(FileError, match="cannot write: Is a directory"):
        write_atomic(tmp_path / "a.md", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"]


def test_stale_temporary_files_are_reported_and_removed(tmp_path):
    spec = str(BAD.parent / "fixtures" / "report_tiny.json")
    out = tmp_path / "out"
    assert cli_runner().invoke(main, ["report", spec, "--out", str(out)]).exit_code == 0
    leftover = out / "networks" / ".report_tiny.md.abcd1234.archcalc-tmp"  # a run killed mid-write
    leftover.write_text("half")
    result = cli_runner().invoke(main, ["report", spec, "--out", str(out), "--check"])
    assert result.exit_code == 1
    assert "networks/.report_tiny.md.abcd1234.archcalc-tmp (a temporary file of an interrupted run)" in result.stdout
    assert cli_runner().invoke(main, ["report", spec, "--out", str(out)]).exit_code == 0
    assert not leftover.exists()


def test_sigterm_during_a_report_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out"
    run = _cli("report", "--out", str(out), stdout=subprocess.DEVNULL)
    time.sleep(3)
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=60)
    left = [p for p in out.rglob("*") if is_temporary(p.name)] if out.exists() else []
    assert left == []


def test_names_never_leave_the_output_folder(tmp_path):
    (tmp_path / "out").mkdir()
    spec = tmp_path / "net.json"
    spec.write_text('{"name": "../../../escaped", "input": [3, 8, 8], "layers": [{"type": "relu"}]}')
    fails_cleanly(["report", str(spec), "--out", str(tmp_path / "out")], "$.name: expected a name of 1 to 100 characters")
    fails_cleanly(["report", str(spec), "--out", str(tmp_path / "out"), "--check"], "$.name: expected a name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["net.json", "out"]  # nothing written, inside or out
    (tmp_path / "out" / "networks").mkdir()
    (tmp_path / "out" / "networks" / "link.md").symlink_to(tmp_path / "outside.md")
    for relative, why in [("../x.md", "not a plain file name"), ("/etc/x.md", "not a plain file name"),
                          ("networks/a\nb.md", "not a plain file name"), ("networks/link.md", "resolves outside")]:
        with pytest.raises(FileError, match=why):
            confined(tmp_path / "out", relative)


# ---- accepted, and fast, where it used to hang or crash ----------------------------------------

def test_huge_adaptive_output_is_quick(tmp_path):
    # 224 -> 10**9: the windows repeat every 10**9 / gcd(224, 10**9) = 31,250,000 outputs, more than
    # the field table holds: refused at once with the reason, never a loop over every output
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 224, 224], "layers": [{"type": "adaptive_avg_pool2d", "output": 1000000000}]}')
    started = time.process_time()
    result = cli_runner().invoke(main, ["table", str(spec), "--format", "json"])
    assert time.process_time() - started < 2
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "repeats only every 31,250,000 output positions" in result.stderr
    from archcalc.layers.pool import _adaptive_window

    assert _adaptive_window(224, 10**9) == (2, 1)  # widths 0 + 1 or 0 + 2 (gcd(224, 10**9) = 32 < 224)


def test_output_is_utf8_json(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"title": "Réseau \\ud83d\\ude00", "input": [3, 8, 8], "layers": [{"type": "relu"}]}', encoding="utf-8")
    for out_format in ("json", "text", "markdown"):
        result = cli_runner().invoke(main, ["table", str(spec), "--format", out_format])
        assert result.exit_code == 0, result.output
        result.stdout_bytes.decode("utf-8")
    assert json.loads(cli_runner().invoke(main, ["table", str(spec), "--format", "json"]).stdout)["name"] == "net"


def test_sum_of_3000_terms_and_1000_unary_minus_evaluate(tmp_path):
    spec = tmp_path / "net.json"
    out = "+".join(["1"] * 3000)
    spec.write_text(json.dumps({"input": [3, 8, 8], "params": {"a": out, "b": "-" * 1000 + "4"},
                                "layers": [{"type": "conv2d", "out": "a // 1000 + b", "kernel": 1}]}))
    network = load(str(spec))
    assert network.root.children[0].attrs["out"] == 3 + 4  # 1000 minus signs cancel


def test_verify_refuses_a_layer_too_big_to_allocate(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [16], "layers": [{"type": "linear", "out": 10000000000}]}')
    fails_cleanly(["verify", str(spec), "--no-rf"], "verify would allocate", file=str(spec))


@pytest.mark.parametrize("text, shown", [
    ("plain text, é, 日本, \u00a0", "plain text, é, 日本, \u00a0"),
    ("a\x1b]0;t\x07b", "a\\x1b]0;t\\x07b"),
    ("\0\n\r\t\x7f", "\\0\\n\\r\\t\\x7f"),
    ("csi \x9b2J nel \x85", "csi \\x9b2J nel \\x85"),  # C1: a terminal may obey them
    ("\ud800 \ufffe \uffff", "\\ud800 \\ufffe \\uffff"),  # XML 1.0 cannot hold them even as references
    ("\u2028\u2029", "\\u2028\\u2029"),  # line breaks to some readers
])
def test_one_line_escapes_every_control_character(text, shown):
    from archcalc.errors import one_line

    assert one_line(text) == shown
