# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n302:min_max_normalize;sigmoid;relu;normalize_ps;-;-:sum,second,product'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
