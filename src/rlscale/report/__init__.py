"""rlscale.report"""
