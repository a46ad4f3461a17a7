"""rlscale.reward"""
