"""rlscale.laws"""
