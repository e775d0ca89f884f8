# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n301:softmax;softmax;softmax;l2norm_last,exp;normalize;abslog,min_max_normalize_ps:product,sum,product'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
