"""sha256 of each file of the shipped base model (written by
``python -m magic_driver.world_shipped --write-shipped``; do not edit)."""

SHIPPED_SHA256: dict[str, str] = {
    'config.json': 'dc09304b4e86d066224325414b962ce501b47a3e5d67ccf48b73a569ff55dac6',
    'generation_config.json': '6c407cf217540b84d46efcb07dbcd77da478147bd4ca6e78727ec2b4db23f74a',
    'info.json': 'ba510175a13fba51fa94da30d601af53b249623cb1854455bb8b7a2d96a91feb',
    'model.safetensors': '758bf26a12f3b4e34670f83024fe80d7b9dff3970833447401762fc3d81a2a92',
    'tokenizer.json': 'd5a115d18ca0055a198303bebe6ca64ea8d67188735de2712485882b284603fd',
    'tokenizer_config.json': 'b48da1fc3672c0aa8c1e6018050b77178b5fd09f65be4ea400f2d0aa9b6a3c8f',
}
