"""rlscale.runs"""
