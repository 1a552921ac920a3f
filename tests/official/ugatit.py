"""znxlwm/UGATIT-pytorch networks.py and UGATIT.py (master), as their authors wrote them: adaILN,
ILN, the ResnetGenerator, the Discriminator, RhoClipper and one training iteration; the judges of
our layers, networks, losses and training step."""
import torch
from torch import nn
from torch.nn.parameter import Parameter

class adaILN(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.rho = Parameter(torch.Tensor(1, num_features, 1, 1))
        self.rho.data.fill_(0.9)

    def forward(self, input, gamma, beta):
        in_mean, in_var = torch.mean(input, dim=[2, 3], keepdim=True), torch.var(input, dim=[2, 3], keepdim=True)
        out_in = (input - in_mean) / torch.sqrt(in_var + self.eps)
        ln_mean, ln_var = torch.mean(input, dim=[1, 2, 3], keepdim=True), torch.var(input, dim=[1, 2, 3], keepdim=True)
        out_ln = (input - ln_mean) / torch.sqrt(ln_var + self.eps)
        out = self.rho.expand(input.shape[0], -1, -1, -1) * out_in + (1 - self.rho.expand(input.shape[0], -1, -1, -1)) * out_ln
        out = out * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3)
        return out


class ILN(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.rho = Parameter(torch.Tensor(1, num_features, 1, 1))
        self.gamma = Parameter(torch.Tensor(1, num_features, 1, 1))
        self.beta = Parameter(torch.Tensor(1, num_features, 1, 1))
        self.rho.data.fill_(0.0)
        self.gamma.data.fill_(1.0)
        self.beta.data.fill_(0.0)

    def forward(self, input):
        in_mean, in_var = torch.mean(input, dim=[2, 3], keepdim=True), torch.var(input, dim=[2, 3], keepdim=True)
        out_in = (input - in_mean) / torch.sqrt(in_var + self.eps)
        ln_mean, ln_var = torch.mean(input, dim=[1, 2, 3], keepdim=True), torch.var(input, dim=[1, 2, 3], keepdim=True)
        out_ln = (input - ln_mean) / torch.sqrt(ln_var + self.eps)
        out = self.rho.expand(input.shape[0], -1, -1, -1) * out_in + (1 - self.rho.expand(input.shape[0], -1, -1, -1)) * out_ln
        out = out * self.gamma.expand(input.shape[0], -1, -1, -1) + self.beta.expand(input.shape[0], -1, -1, -1)
        return out


def class_activation_map(net, x, activation):
    """The CAM head both U-GAT-IT networks write out in their forward (gap_fc, gmp_fc, conv1x1),
    kept once here: (features, cam_logit, heatmap)."""
    gap = torch.nn.functional.adaptive_avg_pool2d(x, 1)
    gap_logit = net.gap_fc(gap.view(x.shape[0], -1))
    gap_weight = list(net.gap_fc.parameters())[0]
    gap = x * gap_weight.unsqueeze(2).unsqueeze(3)
    gmp = torch.nn.functional.adaptive_max_pool2d(x, 1)
    gmp_logit = net.gmp_fc(gmp.view(x.shape[0], -1))
    gmp_weight = list(net.gmp_fc.parameters())[0]
    gmp = x * gmp_weight.unsqueeze(2).unsqueeze(3)
    cam_logit = torch.cat([gap_logit, gmp_logit], 1)
    x = torch.cat([gap, gmp], 1)
    x = activation(net.conv1x1(x))
    heatmap = torch.sum(x, dim=1, keepdim=True)
    return x, cam_logit, heatmap


class OfficialUGATITGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, n_blocks=6, img_size=256, light=False):
        super().__init__()
        self.n_blocks = n_blocks
        self.light = light
        DownBlock = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, stride=1, padding=0, bias=False),
                     nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2 ** i
            DownBlock += [nn.ReflectionPad2d(1),
                          nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=0, bias=False),
                          nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        mult = 2 ** n_downsampling
        for i in range(n_blocks):
            DownBlock += [UGATITResnetBlock(ngf * mult, use_bias=False)]
        self.gap_fc = nn.Linear(ngf * mult, 1, bias=False)
        self.gmp_fc = nn.Linear(ngf * mult, 1, bias=False)
        self.conv1x1 = nn.Conv2d(ngf * mult * 2, ngf * mult, kernel_size=1, stride=1, bias=True)
        self.relu = nn.ReLU(True)
        if self.light:
            FC = [nn.Linear(ngf * mult, ngf * mult, bias=False), nn.ReLU(True),
                  nn.Linear(ngf * mult, ngf * mult, bias=False), nn.ReLU(True)]
        else:
            FC = [nn.Linear(img_size // mult * img_size // mult * ngf * mult, ngf * mult, bias=False), nn.ReLU(True),
                  nn.Linear(ngf * mult, ngf * mult, bias=False), nn.ReLU(True)]
        self.gamma = nn.Linear(ngf * mult, ngf * mult, bias=False)
        self.beta = nn.Linear(ngf * mult, ngf * mult, bias=False)
        for i in range(n_blocks):
            setattr(self, 'UpBlock1_' + str(i + 1), UGATITResnetAdaILNBlock(ngf * mult, use_bias=False))
        UpBlock2 = []
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            UpBlock2 += [nn.Upsample(scale_factor=2, mode='nearest'), nn.ReflectionPad2d(1),
                         nn.Conv2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=1, padding=0, bias=False),
                         ILN(int(ngf * mult / 2)), nn.ReLU(True)]
        UpBlock2 += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, stride=1, padding=0, bias=False),
                     nn.Tanh()]
        self.DownBlock = nn.Sequential(*DownBlock)
        self.FC = nn.Sequential(*FC)
        self.UpBlock2 = nn.Sequential(*UpBlock2)

    def forward(self, input):
        x, cam_logit, heatmap = class_activation_map(self, self.DownBlock(input), self.relu)
        if self.light:
            x_ = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            x_ = self.FC(x_.view(x_.shape[0], -1))
        else:
            x_ = self.FC(x.view(x.shape[0], -1))
        gamma, beta = self.gamma(x_), self.beta(x_)
        for i in range(self.n_blocks):
            x = getattr(self, 'UpBlock1_' + str(i + 1))(x, gamma, beta)
        out = self.UpBlock2(x)
        return out, cam_logit, heatmap


class UGATITResnetBlock(nn.Module):
    def __init__(self, dim, use_bias):
        super().__init__()
        conv_block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias),
                      nn.InstanceNorm2d(dim), nn.ReLU(True)]
        conv_block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias),
                       nn.InstanceNorm2d(dim)]
        self.conv_block = nn.Sequential(*conv_block)

    def forward(self, x):
        return x + self.conv_block(x)


class UGATITResnetAdaILNBlock(nn.Module):
    def __init__(self, dim, use_bias):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias)
        self.norm1 = adaILN(dim)
        self.relu1 = nn.ReLU(True)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias)
        self.norm2 = adaILN(dim)

    def forward(self, x, gamma, beta):
        out = self.pad1(x)
        out = self.conv1(out)
        out = self.norm1(out, gamma, beta)
        out = self.relu1(out)
        out = self.pad2(out)
        out = self.conv2(out)
        out = self.norm2(out, gamma, beta)
        return out + x



class OfficialUGATITDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=5):
        super().__init__()
        model = [nn.ReflectionPad2d(1),
                 nn.utils.spectral_norm(nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=0, bias=True)),
                 nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers - 2):
            mult = 2 ** (i - 1)
            model += [nn.ReflectionPad2d(1),
                      nn.utils.spectral_norm(
                          nn.Conv2d(ndf * mult, ndf * mult * 2, kernel_size=4, stride=2, padding=0, bias=True)),
                      nn.LeakyReLU(0.2, True)]
        mult = 2 ** (n_layers - 2 - 1)
        model += [nn.ReflectionPad2d(1),
                  nn.utils.spectral_norm(
                      nn.Conv2d(ndf * mult, ndf * mult * 2, kernel_size=4, stride=1, padding=0, bias=True)),
                  nn.LeakyReLU(0.2, True)]
        mult = 2 ** (n_layers - 2)
        self.gap_fc = nn.utils.spectral_norm(nn.Linear(ndf * mult, 1, bias=False))
        self.gmp_fc = nn.utils.spectral_norm(nn.Linear(ndf * mult, 1, bias=False))
        self.conv1x1 = nn.Conv2d(ndf * mult * 2, ndf * mult, kernel_size=1, stride=1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.utils.spectral_norm(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=0, bias=False))
        self.model = nn.Sequential(*model)

    def forward(self, input):
        x, cam_logit, heatmap = class_activation_map(self, self.model(input), self.leaky_relu)
        x = self.pad(x)
        out = self.conv(x)
        return out, cam_logit, heatmap


class RhoClipper(object):
    def __init__(self, min, max):
        self.clip_min = min
        self.clip_max = max
        assert min < max

    def __call__(self, module):
        if hasattr(module, 'rho'):
            w = module.rho.data
            w = w.clamp(self.clip_min, self.clip_max)
            module.rho.data = w


class OfficialIteration:
    """UGATIT.train's loop body for one iteration. genA2B / genB2A return (image, cam_logit,
    heatmap); the discriminators are OfficialUGATITDiscriminator-like. `losses` holds every
    named term as a float after __call__."""

    def __init__(self, genA2B, genB2A, disGA, disGB, disLA, disLB, lr=1e-4, weight_decay=1e-4,
                 adv_weight=1, cycle_weight=10, identity_weight=10, cam_weight=1000):
        self.genA2B, self.genB2A, self.disGA, self.disGB, self.disLA, self.disLB = \
            genA2B, genB2A, disGA, disGB, disLA, disLB
        self.adv_weight, self.cycle_weight = adv_weight, cycle_weight
        self.identity_weight, self.cam_weight = identity_weight, cam_weight
        self.L1_loss = nn.L1Loss()
        self.MSE_loss = nn.MSELoss()
        self.BCE_loss = nn.BCEWithLogitsLoss()
        self.G_optim = torch.optim.Adam(list(genA2B.parameters()) + list(genB2A.parameters()), lr=lr,
                                        betas=(0.5, 0.999), weight_decay=weight_decay)
        self.D_optim = torch.optim.Adam(list(disGA.parameters()) + list(disGB.parameters())
                                        + list(disLA.parameters()) + list(disLB.parameters()),
                                        lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
        self.Rho_clipper = RhoClipper(0, 1)
        self.losses = {}

    def __call__(self, real_A, real_B):
        MSE, BCE, L1 = self.MSE_loss, self.BCE_loss, self.L1_loss
        # Update D
        self.D_optim.zero_grad()
        fake_A2B, _, _ = self.genA2B(real_A)
        fake_B2A, _, _ = self.genB2A(real_B)
        real_GA_logit, real_GA_cam_logit, _ = self.disGA(real_A)
        real_LA_logit, real_LA_cam_logit, _ = self.disLA(real_A)
        real_GB_logit, real_GB_cam_logit, _ = self.disGB(real_B)
        real_LB_logit, real_LB_cam_logit, _ = self.disLB(real_B)
        fake_GA_logit, fake_GA_cam_logit, _ = self.disGA(fake_B2A)
        fake_LA_logit, fake_LA_cam_logit, _ = self.disLA(fake_B2A)
        fake_GB_logit, fake_GB_cam_logit, _ = self.disGB(fake_A2B)
        fake_LB_logit, fake_LB_cam_logit, _ = self.disLB(fake_A2B)

        D_ad_loss_GA = MSE(real_GA_logit, torch.ones_like(real_GA_logit)) + MSE(fake_GA_logit, torch.zeros_like(fake_GA_logit))
        D_ad_cam_loss_GA = MSE(real_GA_cam_logit, torch.ones_like(real_GA_cam_logit)) + MSE(fake_GA_cam_logit, torch.zeros_like(fake_GA_cam_logit))
        D_ad_loss_LA = MSE(real_LA_logit, torch.ones_like(real_LA_logit)) + MSE(fake_LA_logit, torch.zeros_like(fake_LA_logit))
        D_ad_cam_loss_LA = MSE(real_LA_cam_logit, torch.ones_like(real_LA_cam_logit)) + MSE(fake_LA_cam_logit, torch.zeros_like(fake_LA_cam_logit))
        D_ad_loss_GB = MSE(real_GB_logit, torch.ones_like(real_GB_logit)) + MSE(fake_GB_logit, torch.zeros_like(fake_GB_logit))
        D_ad_cam_loss_GB = MSE(real_GB_cam_logit, torch.ones_like(real_GB_cam_logit)) + MSE(fake_GB_cam_logit, torch.zeros_like(fake_GB_cam_logit))
        D_ad_loss_LB = MSE(real_LB_logit, torch.ones_like(real_LB_logit)) + MSE(fake_LB_logit, torch.zeros_like(fake_LB_logit))
        D_ad_cam_loss_LB = MSE(real_LB_cam_logit, torch.ones_like(real_LB_cam_logit)) + MSE(fake_LB_cam_logit, torch.zeros_like(fake_LB_cam_logit))

        D_loss_A = self.adv_weight * (D_ad_loss_GA + D_ad_cam_loss_GA + D_ad_loss_LA + D_ad_cam_loss_LA)
        D_loss_B = self.adv_weight * (D_ad_loss_GB + D_ad_cam_loss_GB + D_ad_loss_LB + D_ad_cam_loss_LB)

        Discriminator_loss = D_loss_A + D_loss_B
        Discriminator_loss.backward()
        self.D_optim.step()

        # Update G
        self.G_optim.zero_grad()

        fake_A2B, fake_A2B_cam_logit, _ = self.genA2B(real_A)
        fake_B2A, fake_B2A_cam_logit, _ = self.genB2A(real_B)

        fake_A2B2A, _, _ = self.genB2A(fake_A2B)
        fake_B2A2B, _, _ = self.genA2B(fake_B2A)

        fake_A2A, fake_A2A_cam_logit, _ = self.genB2A(real_A)
        fake_B2B, fake_B2B_cam_logit, _ = self.genA2B(real_B)

        fake_GA_logit, fake_GA_cam_logit, _ = self.disGA(fake_B2A)
        fake_LA_logit, fake_LA_cam_logit, _ = self.disLA(fake_B2A)
        fake_GB_logit, fake_GB_cam_logit, _ = self.disGB(fake_A2B)
        fake_LB_logit, fake_LB_cam_logit, _ = self.disLB(fake_A2B)

        G_ad_loss_GA = MSE(fake_GA_logit, torch.ones_like(fake_GA_logit))
        G_ad_cam_loss_GA = MSE(fake_GA_cam_logit, torch.ones_like(fake_GA_cam_logit))
        G_ad_loss_LA = MSE(fake_LA_logit, torch.ones_like(fake_LA_logit))
        G_ad_cam_loss_LA = MSE(fake_LA_cam_logit, torch.ones_like(fake_LA_cam_logit))
        G_ad_loss_GB = MSE(fake_GB_logit, torch.ones_like(fake_GB_logit))
        G_ad_cam_loss_GB = MSE(fake_GB_cam_logit, torch.ones_like(fake_GB_cam_logit))
        G_ad_loss_LB = MSE(fake_LB_logit, torch.ones_like(fake_LB_logit))
        G_ad_cam_loss_LB = MSE(fake_LB_cam_logit, torch.ones_like(fake_LB_cam_logit))

        G_recon_loss_A = L1(fake_A2B2A, real_A)
        G_recon_loss_B = L1(fake_B2A2B, real_B)

        G_identity_loss_A = L1(fake_A2A, real_A)
        G_identity_loss_B = L1(fake_B2B, real_B)

        G_cam_loss_A = BCE(fake_B2A_cam_logit, torch.ones_like(fake_B2A_cam_logit)) + BCE(fake_A2A_cam_logit, torch.zeros_like(fake_A2A_cam_logit))
        G_cam_loss_B = BCE(fake_A2B_cam_logit, torch.ones_like(fake_A2B_cam_logit)) + BCE(fake_B2B_cam_logit, torch.zeros_like(fake_B2B_cam_logit))

        G_loss_A = self.adv_weight * (G_ad_loss_GA + G_ad_cam_loss_GA + G_ad_loss_LA + G_ad_cam_loss_LA) + self.cycle_weight * G_recon_loss_A + self.identity_weight * G_identity_loss_A + self.cam_weight * G_cam_loss_A
        G_loss_B = self.adv_weight * (G_ad_loss_GB + G_ad_cam_loss_GB + G_ad_loss_LB + G_ad_cam_loss_LB) + self.cycle_weight * G_recon_loss_B + self.identity_weight * G_identity_loss_B + self.cam_weight * G_cam_loss_B

        Generator_loss = G_loss_A + G_loss_B
        Generator_loss.backward()
        self.G_optim.step()

        # clip parameter of AdaILN and ILN, applied after optimizer step
        self.genA2B.apply(self.Rho_clipper)
        self.genB2A.apply(self.Rho_clipper)

        self.losses = {name: float(value.detach()) for name, value in locals().items()
                       if isinstance(value, torch.Tensor) and value.dim() == 0 and "loss" in name}
        return self.losses
