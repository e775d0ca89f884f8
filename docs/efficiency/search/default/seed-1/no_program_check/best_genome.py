# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n301:min_max_normalize_ps,l2_norm;min_max_normalize_ps;l2_norm,silu;softmax,sigmoid_1_reverse;min_max_normalize_ps;relu,abslog:sum,first,sum'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
