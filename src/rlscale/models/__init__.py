"""rlscale.models"""
