"""rlscale.rl"""
